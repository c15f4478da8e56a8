"""raftnode's main use: a namespaced metastore. Each team's keys live in
their own namespace; a compare-and-set guards a config update; a watch
sees every change, in order."""

from _cluster import client

with client() as c:
    team = c.kv("team1")
    team.put("app/config", "v1")
    current = team.entry("app/config")
    assert team.put("app/config", "v2", cas=current.modify_index)
    assert not team.put("app/config", "v3", cas=current.modify_index), "a stale update"
    print("team1 app/config =", team.get("app/config").decode())
    print("team2 app/config =", c.kv("team2").get("app/config"))
    changes = team.watch("app/", recurse=True, start=current.modify_index)
    for e in (next(changes), next(changes)):
        print("change at", e.index, e.op, e.key, e.value)
