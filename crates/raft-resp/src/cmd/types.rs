//! The other Redis types' common commands. raftstack keeps strings only
//! (its keys are shared with the HTTP API, whose values are bytes): on a
//! key that exists these answer WRONGTYPE, as Redis does for a string,
//! and on one that does not they say what is kept.

use super::{Call, Kind, Plan, Spec, attempt, key, peek};
use crate::frame::Frame;

macro_rules! others {
    ($($name:literal $group:literal),* $(,)?) => {
        &[$(Spec {
            name: $name,
            arity: -2,
            kind: Kind::Read,
            keys: (1, 1, 1),
            group: $group,
            summary: "Not kept by raftstack (strings only): WRONGTYPE on a key that exists",
            run: other,
        }),*]
    };
}

pub const COMMANDS: &[Spec] = others![
    "lpush" "list", "rpush" "list", "lpop" "list", "rpop" "list", "lrange" "list",
    "llen" "list", "lindex" "list", "lset" "list", "lrem" "list", "ltrim" "list",
    "hset" "hash", "hget" "hash", "hgetall" "hash", "hdel" "hash", "hmset" "hash",
    "hmget" "hash", "hincrby" "hash", "hkeys" "hash", "hvals" "hash", "hlen" "hash",
    "hexists" "hash", "sadd" "set", "srem" "set", "smembers" "set", "sismember" "set",
    "scard" "set", "spop" "set", "zadd" "sorted-set", "zrange" "sorted-set",
    "zrem" "sorted-set", "zscore" "sorted-set", "zcard" "sorted-set",
    "zincrby" "sorted-set", "zrangebyscore" "sorted-set", "xadd" "stream",
    "xrange" "stream", "xlen" "stream", "pfadd" "hyperloglog", "pfcount" "hyperloglog",
    "setbit" "bitmap", "getbit" "bitmap", "bitcount" "bitmap",
];

fn other(c: Call<'_>) -> Plan {
    let name = c.name;
    attempt(|| {
        let k = key(&c.args[0])?;
        Ok(peek(c.s, vec![k], move |v| match v[0] {
            Some(_) => Frame::coded(
                "WRONGTYPE",
                "Operation against a key holding the wrong kind of value",
            ),
            None => Frame::err(format!(
                "'{name}' is not supported: raftstack keeps strings only (docs/resp.md)"
            )),
        }))
    })
}
