"""The client against a real three-node cluster over mutual TLS."""

import asyncio
import os
import signal
import threading
import time

import pytest

from raftstack import AsyncClient, BadRequest, Client, Conflict, NotFound, Unavailable


def test_kv_round_trip_in_namespaces(client):
    a, b = client.kv("py-a"), client.kv("py-b")
    assert a.put("colour", "blue")
    assert a.get("colour") == b"blue"
    assert b.get("colour") is None, "namespaces are isolated"
    assert a.get("colour", stale=True) in (b"blue", None)
    assert a.delete("colour")
    assert a.get("colour") is None


def test_compare_and_set(client):
    kv = client.kv("py-cas")
    assert kv.put("k", "v1", cas=0), "cas=0: only if absent"
    assert not kv.put("k", "v2", cas=0)
    e = kv.entry("k")
    assert e.value == b"v1" and e.create_index == e.modify_index
    assert not kv.put("k", "v2", cas=e.modify_index + 1000)
    assert kv.put("k", "v2", cas=e.modify_index)
    assert kv.get("k") == b"v2"
    assert not kv.delete("k", cas=e.modify_index), "a stale cas deletes nothing"
    assert kv.get("k") == b"v2"


def test_list_and_keys(client):
    kv = client.kv("py-list")
    for k in ["app/a", "app/b", "app/sub/c", "other"]:
        kv.put(k, k.upper())
    assert [e.key for e in kv.list("app/")] == ["app/a", "app/b", "app/sub/c"]
    assert [e.value for e in kv.list("app/")][0] == b"APP/A"
    assert kv.keys("app/", separator="/") == ["app/a", "app/b", "app/sub/"]
    assert kv.list("nothing/") == []
    assert kv.delete("app/", recurse=True)
    assert kv.keys("") == ["other"]
    assert client.namespaces()["py-list"] == 1


def test_a_retried_session_write_applies_once(client, nodes):
    kv = client.kv("py-once")
    kv.put("n", "zeroth")
    kv.put("n", "first")
    before = kv.entry("n").modify_index
    # The same (client, seq) again, as a retry after a lost answer sends
    # it, to another node: the first answer, and no second write.
    params = {"ns": "py-once", "client": client.client_id, "seq": client.seq}
    again = client.transport.once(nodes[-1], "PUT", "/v1/kv/n", params, b"second")
    assert again.status == 200 and again.json() is True
    assert kv.entry("n").modify_index == before
    assert kv.get("n") == b"first"
    older = dict(params, seq=client.seq - 1)
    with pytest.raises(Conflict):
        client.transport.request("PUT", "/v1/kv/n", older, b"older")


def test_bad_requests_are_typed(client):
    with pytest.raises(BadRequest):
        client.kv("bad namespace!").get("k")
    with pytest.raises(BadRequest) as e:
        client.transport.request("PUT", "/v1/kv/k", {"cass": 1}, b"typo")
    assert "cass" in str(e.value)
    with pytest.raises(NotFound):
        client.log.get(10**12)


def test_the_consensus_log(client):
    i = client.log.append(b"deployed v42")
    e = client.log.get(i)
    assert e["kind"] == "opaque" and e["text"] == "deployed v42"
    read = client.log.read(max(1, i - 5), i)
    assert read[-1]["index"] == i
    assert [x["index"] for x in read] == list(range(read[0]["index"], i + 1))
    whole = client.log.read()
    assert whole[-1]["index"] >= i and len(whole) >= i - whole[0]["index"] + 1
    follow = client.log.follow(i)
    assert next(follow)["index"] == i
    j = client.log.append(b"deployed v43")
    got = next(follow)
    while got["index"] < j:
        got = next(follow)
    assert got["index"] == j and got["text"] == "deployed v43"


def test_watch_from_the_past_and_live(client):
    kv = client.kv("py-watch")
    kv.put("w/a", "1")
    start = kv.entry("w/a").modify_index
    kv.put("w/b", "2")
    kv.delete("w/a")
    events = kv.watch("w/", recurse=True, start=start)
    seen = [next(events) for _ in range(3)]
    assert [(e.op, e.key) for e in seen] == [("put", "w/a"), ("put", "w/b"), ("delete", "w/a")]
    assert seen[1].value == b"2"
    threading.Timer(0.3, lambda: kv.put("w/c", "3")).start()
    live = next(events)
    assert (live.op, live.key, live.value) == ("put", "w/c", b"3")


def test_status_health_and_discovery(client, nodes, certs):
    s = client.status()
    assert s["role"] in ("leader", "follower") and s["commit_index"] > 0
    assert client.health()["health"] in ("green", "yellow")
    assert client.leader() != ""
    with Client(nodes[:1], certs) as one:
        assert sorted(one.discover()) == sorted(nodes)


def test_a_node_that_is_down_is_passed_over(nodes, certs):
    dead = "127.0.0.1:1"  # nothing listens on port 1
    with Client([dead] + nodes, certs, retry_for=5) as c:
        assert c.kv("py-fail").put("k", "v")
        assert c.kv("py-fail").get("k") == b"v"
    with Client([dead], certs, retry_for=0.5) as c, pytest.raises(Unavailable):
        c.kv("py-fail").get("k")



def test_a_lease_kept_alive_outlives_its_ttl_and_takes_its_keys(client):
    kv = client.kv("py-lease")
    with client.lease(1.5, "py-lease") as lease:
        assert kv.put("svc/a", "10.0.0.7", lease=lease.id)
        assert lease.id in client.leases("py-lease")
        time.sleep(3.5)  # over twice the TTL: the keepalive holds it
        assert not lease.lost.is_set()
        assert kv.get("svc/a") == b"10.0.0.7"
        assert lease.info()["Keys"][0]["Key"] == "svc/a"
    assert kv.get("svc/a") is None, "revoking the lease deleted its key"
    with pytest.raises(NotFound):
        lease.keepalive()


def test_a_lease_left_alone_expires(client):
    kv = client.kv("py-lease")
    lease = client.lease(1, "py-lease")
    kv.put("tmp", "x", lease=lease.id)
    deadline = time.monotonic() + 20
    while kv.get("tmp") is not None:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.2)
    assert lease.revoke() == 0


def test_locks_exclude_each_other_and_fence(client, nodes, certs):
    kv = client.kv("py-lock")
    with kv.lock("jobs/nightly", "worker-1", ttl=5) as first:
        assert first.fence > 0
        with Client(nodes, certs) as other:
            with pytest.raises(TimeoutError):
                other.kv("py-lock").lock("jobs/nightly", ttl=5, timeout=1).acquire()
            # The waiter that gave up let its lease go.
            assert list(client.leases("py-lock")) == [first.lease.id]
            # Waiting for the holder: released below, from another thread.
            threading.Timer(0.5, first.release).start()
            with other.kv("py-lock").lock("jobs/nightly", "worker-2", ttl=5, timeout=10) as second:
                assert second.fence > first.fence
                assert kv.get("jobs/nightly") == b"worker-2"


def test_transactions_all_or_nothing(client):
    t = client.txn().set("acct/a", "70", ns="py-txn").set("acct/b", "30", ns="py-txn")
    r = t.get_tree("acct/", ns="py-txn").commit()
    assert r.ok and [e.key for e in r.results][-2:] == ["acct/a", "acct/b"]
    a = client.kv("py-txn").entry("acct/a")
    moved = (
        client.txn()
        .check_index("acct/a", a.modify_index + 1, ns="py-txn")
        .delete("acct/b", ns="py-txn")
        .commit()
    )
    assert not moved.ok and moved.errors[0]["OpIndex"] == 0
    assert client.kv("py-txn").get("acct/b") == b"30", "a failed transaction changed nothing"
    ok = client.txn().cas("acct/a", "60", a.modify_index, ns="py-txn").commit()
    assert ok.ok and client.kv("py-txn").get("acct/a") == b"60"


def test_the_asyncio_client(nodes, certs):
    async def run():
        async with AsyncClient(nodes, certs) as c:
            kv = c.kv("py-aio")
            # Concurrent reads while a watch runs, on one event loop.
            start = (await c.status())["commit_index"] + 1
            events = kv.watch("a/", recurse=True, start=start)
            assert all(await asyncio.gather(*(kv.put(f"a/{i}", str(i)) for i in range(5))))
            got = sorted([(await events.__anext__()).key for _ in range(5)])
            await events.aclose()
            assert got == [f"a/{i}" for i in range(5)]
            assert await kv.get("a/3") == b"3"
            async with kv.lock("a/lock", "me") as lock:
                assert lock.fence > 0
            i = await c.append(b"from asyncio")
            follow = c.follow(i)
            assert (await follow.__anext__())["text"] == "from asyncio"
            await follow.aclose()
            r = await c.commit(c.txn().check_not_exists("a/9", ns="py-aio"))
            assert r.ok

    asyncio.run(run())

EXAMPLES = ["log_access.py", "metastore.py", "processors.py", "fsm.py"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_examples_run(example, nodes, certs):
    import subprocess
    import sys

    here = os.path.dirname(__file__)
    path = os.path.join(here, "..", "examples", example)
    env = dict(os.environ, RAFTSTACK_NODES=",".join(nodes), RAFTSTACK_CERTS=certs)
    out = subprocess.run(
        [sys.executable, path], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "the example printed nothing"


def test_writes_go_on_when_a_follower_is_killed(nodes, certs):
    """Last: it kills a node. Writes through a client whose first node
    is the killed follower go on at the others, each applied once."""
    pid = int(os.environ["RAFTSTACK_FOLLOWER_PID"])
    port = os.environ["RAFTSTACK_FOLLOWER_NODE"]
    order = [port] + [n for n in nodes if n != port]
    with Client(order, certs) as c:
        kv = c.kv("py-kill")
        kv.put("before", "1")
        os.kill(pid, signal.SIGKILL)
        for i in range(20):
            assert kv.put(f"k{i}", str(i))
        entries = kv.list("k")
        assert len(entries) == 20
        indexes = [e.modify_index for e in entries]
        assert len(set(indexes)) == 20, "a write applied twice"

