"""raftify's main use: your own state machine (FSM) fed by the log.
Commands are appended as entries; a replica applies them in log order,
can snapshot its state with the index it reflects, and a new replica
restores that snapshot and follows the log from the next index."""

import json

from _cluster import client


class HashStore:
    """raftify's example FSM: a dict, changed by set commands."""

    def __init__(self):
        self.store = {}
        self.applied = 0

    def apply(self, entry):
        self.applied = entry["index"]
        if entry["kind"] == "opaque":
            cmd = json.loads(entry["text"])
            if cmd.get("op") == "set":
                self.store[cmd["key"]] = cmd["value"]

    def snapshot(self):
        return json.dumps({"applied": self.applied, "store": self.store})

    def restore(self, snapshot):
        s = json.loads(snapshot)
        self.applied, self.store = s["applied"], s["store"]


def set_command(c, key, value):
    return c.log.append(json.dumps({"op": "set", "key": key, "value": value}).encode())


def catch_up(c, fsm, upto):
    for entry in c.log.follow(fsm.applied + 1):
        fsm.apply(entry)
        if fsm.applied >= upto:
            return


with client() as c:
    start = set_command(c, "1", "A")
    last = set_command(c, "2", "B")
    first = HashStore()
    first.applied = start - 1
    catch_up(c, first, last)
    snap = first.snapshot()
    newest = set_command(c, "1", "C")
    second = HashStore()
    second.restore(snap)
    catch_up(c, second, newest)
    print("replica from the log:", first.store, "| restored and caught up:", second.store)
    assert second.store == {"1": "C", "2": "B"}
