"""The KV (Consul's ``/v1/kv``) in one namespace, and watches on it."""

from __future__ import annotations

import base64
import http.client
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, List, Optional, Union

from .errors import Gone, Unavailable
from urllib.parse import quote

if TYPE_CHECKING:
    from .client import Client
    from .lease import Lock

Value = Union[bytes, str]


@dataclass(frozen=True)
class Entry:
    """A key as stored: its value and the log indexes that made it."""

    key: str
    value: bytes
    create_index: int
    modify_index: int
    lease: Optional[int]
    namespace: str

    @staticmethod
    def from_json(v: dict) -> "Entry":
        return Entry(
            key=v["Key"],
            value=base64.b64decode(v.get("Value") or ""),
            create_index=v["CreateIndex"],
            modify_index=v["ModifyIndex"],
            lease=v.get("Lease"),
            namespace=v.get("Namespace", "default"),
        )


@dataclass(frozen=True)
class Event:
    """One change seen by a watch: ``op`` is ``put``, ``delete`` or
    ``expire``; ``value`` and the indexes are set on puts."""

    op: str
    index: int
    key: str
    namespace: str
    value: Optional[bytes]
    create_index: Optional[int]
    modify_index: Optional[int]

    @staticmethod
    def from_json(v: dict) -> "Event":
        raw = v.get("Value")
        return Event(
            op=v["Op"],
            index=v["Index"],
            key=v["Key"],
            namespace=v.get("Namespace", "default"),
            value=None if raw is None else base64.b64decode(raw),
            create_index=v.get("CreateIndex"),
            modify_index=v.get("ModifyIndex"),
        )


def _bytes(v: Value) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


class KV:
    """Keys of one namespace. Reads are linearizable unless ``stale``;
    writes carry the client's session, so a retry after a lost answer
    applies once."""

    def __init__(self, client: "Client", namespace: str = "default"):
        self._c = client
        self.namespace = namespace

    def _path(self, key: str) -> str:
        return "/v1/kv/" + quote(key, safe="/")

    def get(self, key: str, *, stale: bool = False) -> Optional[bytes]:
        """The key's value, or ``None`` if it does not exist."""
        e = self.entry(key, stale=stale)
        return None if e is None else e.value

    def entry(self, key: str, *, stale: bool = False) -> Optional[Entry]:
        """The key with its indexes, or ``None``."""
        params = {"ns": self.namespace, "stale": stale}
        a = self._c.transport.request("GET", self._path(key), params, ok=(404,))
        if a.status == 404:
            return None
        return Entry.from_json(a.json()[0])

    def put(
        self, key: str, value: Value, *, cas: Optional[int] = None, lease: Optional[int] = None
    ) -> bool:
        """Sets the key. With ``cas``, only if its ``modify_index`` is
        ``cas`` (0: only if it does not exist); returns whether it was set."""
        params = {"ns": self.namespace, "cas": cas, "lease": lease}
        a = self._c.session_write("PUT", self._path(key), params, _bytes(value))
        return a.json() is True

    def delete(self, key: str, *, recurse: bool = False, cas: Optional[int] = None) -> bool:
        """Deletes the key (``recurse``: every key under the prefix)."""
        params = {"ns": self.namespace, "recurse": recurse, "cas": cas}
        return self._c.session_write("DELETE", self._path(key), params, None).json() is True

    def lock(self, key: str, value: Value = b"", *, ttl: float = 10.0, timeout: Optional[float] = None) -> "Lock":
        """A lock on ``key`` (Consul's), held on a lease of its own kept
        alive in the background: ``with kv.lock("jobs/nightly") as l:``
        waits until it holds the lock (at most ``timeout`` seconds, then
        ``TimeoutError``), writes ``value`` and gives ``l.fence``, the
        lock's fencing value; leaving releases the lock and revokes the
        lease."""
        from .lease import Lock

        return Lock(self, key, _bytes(value), ttl, timeout)

    def list(self, prefix: str = "", *, stale: bool = False) -> List[Entry]:
        """Every key under ``prefix``, in key order."""
        params = {"ns": self.namespace, "recurse": True, "stale": stale}
        a = self._c.transport.request("GET", self._path(prefix), params, ok=(404,))
        return [] if a.status == 404 else [Entry.from_json(v) for v in a.json()]

    def keys(self, prefix: str = "", *, separator: Optional[str] = None) -> List[str]:
        """The key names under ``prefix`` (folded at ``separator``)."""
        params = {"ns": self.namespace, "keys": True, "separator": separator}
        a = self._c.transport.request("GET", self._path(prefix), params, ok=(404,))
        return [] if a.status == 404 else list(a.json())

    def watch(
        self, key: str, *, recurse: bool = False, start: Optional[int] = None
    ) -> Iterator[Event]:
        """The changes to ``key`` (``recurse``: under the prefix) from log
        index ``start`` on (default: from now), for as long as the caller
        iterates. A broken stream is resumed on any node where it left
        off, so every change comes once, in index order. Raises ``Gone``
        when the nodes' history no longer reaches back to where it must
        resume (re-read with ``list`` and watch from its index + 1)."""
        return _watch(self, key, recurse, start)


class _Cursor:
    """Where a watch resumes: at log index ``at``, whose first ``seen``
    events were already delivered (one entry, a transaction, may make
    several changes, which share its index and always come in order)."""

    def __init__(self, start: Optional[int]):
        self.at = start
        self.seen = 0

    def done_through(self, index: int) -> None:
        self.at, self.seen = index + 1, 0

    def deliver(self, e: Event, skip: List[int]) -> bool:
        """Whether ``e`` is new; ``skip`` counts the replayed events of
        ``at`` still to pass over on this connection."""
        if e.index == self.at and skip[0] > 0:
            skip[0] -= 1
            return False
        if e.index != self.at:
            self.at, self.seen = e.index, 0
        self.seen += 1
        return True


def _watch(kv: KV, key: str, recurse: bool, start: Optional[int]) -> Iterator[Event]:
    t = kv._c.transport
    cur = _Cursor(start)
    failures = 0
    while True:
        node = t._order()[failures % len(t.nodes)]
        params = {"ns": kv.namespace, "recurse": recurse, "from": cur.at}
        skip = [cur.seen]
        try:
            path = "/v1/watch/" + quote(key, safe="/")
            for v in t.stream(node, path, params, read_timeout=30.0):
                failures = 0
                op = v.get("Op")
                if op == "progress":
                    cur.done_through(v["Index"])
                elif op == "end":
                    # The node shuts down: go on from where it stopped, elsewhere.
                    cur.at, cur.seen = v["Next"], 0
                    failures += 1
                    break
                elif op == "compacted":
                    raise Gone(v.get("Reason", "the watch fell behind"), status=410, body=v)
                else:
                    e = Event.from_json(v)
                    if cur.deliver(e, skip):
                        yield e
        except (OSError, http.client.HTTPException, Unavailable) as err:
            failures += 1
            if failures > 3 * len(t.nodes):
                raise Unavailable(f"no node serves the watch: {err}") from err
            time.sleep(0.1 * failures)
