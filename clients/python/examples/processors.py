"""consensual's main use: named processors run in log order on every
replica. `enqueue` appends a call to the consensus log; each replica
follows the log and runs the processors, so every one sees the same calls
in the same order (here one replica, in this process)."""

import json
import threading

from _cluster import client

processed = []
processors = {"dummy": processed.append}


def enqueue(c, processor, parameters):
    return c.log.append(json.dumps({"processor": processor, "parameters": parameters}).encode())


def replica(c, start, count, done):
    for entry in c.log.follow(start):
        if entry["kind"] != "opaque":
            continue  # the KV's own entries, no-ops, configurations
        call = json.loads(entry["text"])
        processors[call["processor"]](call["parameters"])
        if len(processed) == count:
            done.set()
            return


with client() as c:
    first = enqueue(c, "dummy", 42)
    enqueue(c, "dummy", 43)
    done = threading.Event()
    threading.Thread(target=replica, args=(c, first, 2, done), daemon=True).start()
    assert done.wait(30), "the replica did not catch up"
    print("processed in log order:", processed)
