//! Appends N batches of B entries (default 1) to a fresh log: a target for
//! strace and perf when studying where a durable append's time goes.
//! `cargo run --release -p raft-log --example append_loop -- FILE N [B]`

use bytes::Bytes;
use raft_core::{Entry, LogStore, Payload, WriteBatch};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: append_loop FILE N");
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: append_loop FILE N");
    raft_log::remove(path.as_ref()).ok();
    let mut s = raft_log::RedbLogStore::open(&path).expect("open");
    let data = Bytes::from(vec![0xA5u8; 256]);
    for i in 1..=n {
        let e = [Entry {
            index: i,
            term: 1,
            payload: Payload::Normal(data.clone()),
        }];
        s.write(WriteBatch {
            entries: &e,
            ..Default::default()
        })
        .expect("write");
    }
}
