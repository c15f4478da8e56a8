"""pyraftlog's main use: the consensus log itself. Append entries, read
them back by index, and follow the log as it commits (a replica of
whatever state you build from it)."""

import threading

from _cluster import client

with client() as c:
    first = c.log.append(b"deployed v42")
    print("appended at", first, "->", c.log.get(first)["text"])
    follow = c.log.follow(first)
    threading.Timer(0.2, lambda: c.log.append(b"deployed v43")).start()
    for entry in follow:
        print("committed", entry["index"], entry["kind"], entry.get("text", ""))
        if entry.get("text") == "deployed v43":
            break
