"""The consensus log, read directly (pyraftlog's headline feature): only
committed entries, in index order."""

from __future__ import annotations

import http.client
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from .errors import NotFound, Unavailable

if TYPE_CHECKING:
    from .client import Client

LogEntry = Dict[str, Any]
"""An entry as JSON: ``index``, ``term``, ``kind`` (``noop``, ``kv`` with
``op``, ``opaque`` with ``data`` in base64 and ``text``, ``config``)."""


class Log:
    """Reads, appends and follows the committed log."""

    def __init__(self, client: "Client"):
        self._c = client
        # The highest index this client appended: a follower relays the
        # leader's answer to an append before its own log commits it, so
        # reads up to here wait for the answering node to catch up.
        self._written = 0

    def read(self, start: int = 1, end: Optional[int] = None) -> List[LogEntry]:
        """Entries ``start..=end`` (default: up to the commit index), in
        pages of at most 1000; entries compacted into a snapshot are gone,
        so the first may be later than ``start``. Entries this client
        appended are always included."""
        out: List[LogEntry] = []
        while True:
            hi = start + 999 if end is None else min(end, start + 999)
            page = self._page(start, hi)
            out.extend(page["entries"])
            stop = page["commit_index"] if end is None else min(end, page["commit_index"])
            start = max(hi + 1, page["first_index"])
            if start > stop:
                return out

    def _page(self, start: int, hi: int) -> Dict[str, Any]:
        deadline = time.monotonic() + self._c.transport.retry_for
        while True:
            page = self._c.transport.request("GET", "/v1/log", {"from": start, "to": hi}).json()
            if page["commit_index"] >= min(hi, self._written) or time.monotonic() > deadline:
                return page
            time.sleep(0.02)

    def get(self, index: int) -> LogEntry:
        """One committed entry. Raises ``NotFound`` when it is not
        committed yet, ``Gone`` when it was compacted away."""
        deadline = time.monotonic() + self._c.transport.retry_for
        while True:
            try:
                return self._c.transport.request("GET", f"/v1/log/{index}").json()
            except NotFound:
                if index > self._written or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def append(self, data: bytes) -> int:
        """Appends ``data`` as an opaque entry and returns its index once
        applied. A log entry has no session: a lost answer raises
        ``Unavailable`` with ``outcome_unknown`` (it may have committed;
        ``follow`` or ``read`` tell)."""
        a = self._c.transport.request("POST", "/v1/log", body=bytes(data), retry_safe=False)
        index = int(a.json()["index"])
        self._written = max(self._written, index)
        return index

    def follow(self, start: Optional[int] = None) -> Iterator[LogEntry]:
        """Committed entries from ``start`` on (default: the next to
        commit), as they commit, for as long as the caller iterates; a
        broken stream goes on from the next index on another node."""
        t = self._c.transport
        nxt, failures = start, 0
        while True:
            node = t._order()[failures % len(t.nodes)]
            try:
                for e in t.stream(node, "/v1/log/follow", {"from": nxt}, read_timeout=None):
                    failures = 0
                    nxt = e["index"] + 1
                    yield e
                failures += 1  # the node ended the stream (shutting down)
            except (OSError, http.client.HTTPException, Unavailable, NotFound) as err:
                failures += 1
                if failures > 3 * len(t.nodes):
                    raise Unavailable(f"no node serves the log: {err}") from err
                time.sleep(0.1 * failures)
