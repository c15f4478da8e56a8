"""The RESP port through redis-py (PyPI's `redis`), as an application
would use it: sets and gets, pipelines, MULTI/EXEC with a WATCH retry
loop under contention, expiries, and keyspace notifications.

Usage: resp_client.py CERTS_DIR PORT [PORT...]  (exits non-zero on failure)
"""

import os
import sys
import threading
import time

import redis


def connect(certs, port):
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=os.path.join(certs, "transport-ca.pem"),
        ssl_certfile=os.path.join(certs, "transport-client.crt"),
        ssl_keyfile=os.path.join(certs, "transport-client.key"),
        socket_timeout=15,
        decode_responses=True,
    )


def basics(r, other):
    assert r.set("py:greeting", "hello")
    assert other.get("py:greeting") == "hello"
    assert r.set("py:greeting", "again", nx=True) is None
    assert r.set("py:greeting", "world", xx=True, get=True) == "hello"
    assert r.incrby("py:n", 7) == 7
    assert r.incrbyfloat("py:f", 1.5) == 1.5
    assert other.strlen("py:greeting") == 5
    assert r.type("py:greeting") == "string"
    assert r.type("py:none") == "none"
    try:
        r.hset("py:greeting", "f", "v")
        raise AssertionError("HSET on a string key")
    except redis.ResponseError as e:
        assert "WRONGTYPE" in str(e), e


def pipelines(r):
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"py:p:{i}", i)
    p.get("py:p:99")
    out = p.execute()
    assert out[:100] == [True] * 100 and out[100] == "99", out[-3:]
    assert len(list(r.scan_iter(match="py:p:*", count=7))) == 100


def watch_retry_loop(certs, ports, workers=4, each=10):
    """Concurrent WATCH/MULTI/EXEC increments: none lost, none doubled."""
    connect(certs, ports[0]).set("py:counter", 0)
    retries = [0]

    def work(port):
        r = connect(certs, port)
        for _ in range(each):
            with r.pipeline() as p:
                while True:
                    try:
                        p.watch("py:counter")
                        n = int(p.get("py:counter"))
                        p.multi()
                        p.set("py:counter", n + 1)
                        p.execute()
                        break
                    except redis.WatchError:
                        retries[0] += 1

    threads = [threading.Thread(target=work, args=(ports[i % len(ports)],)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = int(connect(certs, ports[-1]).get("py:counter"))
    assert got == workers * each, (got, retries[0])
    print(f"watch loop: {got} increments, {retries[0]} retries")


def expiries(r, other):
    assert r.set("py:session", "s", px=1200)
    assert 0 < other.pttl("py:session") <= 1200
    assert r.expire("py:greeting", 100)
    assert 0 < other.ttl("py:greeting") <= 100
    assert r.persist("py:greeting")
    assert other.ttl("py:greeting") == -1
    deadline = time.time() + 15
    while other.get("py:session") is not None:
        assert time.time() < deadline, "the key never expired"
        time.sleep(0.1)


def notifications(certs, port, writer):
    sub = connect(certs, port).pubsub()
    sub.psubscribe("__keyspace@0__:py:watched*")
    sub.subscribe("__keyevent@0__:del")
    seen = []
    deadline = time.time() + 10
    while len(seen) < 2 and time.time() < deadline:
        m = sub.get_message(timeout=0.2)
        if m and m["type"] in ("psubscribe", "subscribe"):
            seen.append(m["type"])
    writer.set("py:watched:a", "1")
    writer.set("py:elsewhere", "1")
    writer.delete("py:watched:a")
    got = []
    while len(got) < 3 and time.time() < deadline:
        m = sub.get_message(timeout=0.2)
        if m and m["type"] in ("pmessage", "message"):
            got.append((m["channel"], m["data"]))
    want = [
        ("__keyspace@0__:py:watched:a", "set"),
        ("__keyspace@0__:py:watched:a", "del"),
        ("__keyevent@0__:del", "py:watched:a"),
    ]
    assert got == want, got
    sub.close()


def main():
    certs, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
    r, other = connect(certs, ports[0]), connect(certs, ports[-1])
    basics(r, other)
    pipelines(r)
    watch_retry_loop(certs, ports)
    expiries(r, other)
    notifications(certs, ports[-1], r)
    print("redis-py: all passed")


if __name__ == "__main__":
    main()
