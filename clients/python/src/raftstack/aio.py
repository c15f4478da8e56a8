"""The asyncio client: the same operations as ``Client``, awaitable.

Each call runs the blocking client's in a worker thread
(``asyncio.to_thread``), so a slow node or a failover never blocks the
event loop; watches and log follows are async iterators fed by a thread.
Writes stay exactly-once and in order: they share one session.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, TypeVar

from .client import Client
from .kv import KV, Entry, Event, Value
from .lease import Lease, Lock
from .log import LogEntry
from .txn import Txn, TxnResult

T = TypeVar("T")
_DONE = object()


async def _call(f: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await asyncio.to_thread(f, *args, **kw)


async def _iterate(make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Runs a blocking iterator in a thread, handing its items to the
    loop; stops the thread (at its next item) when the caller stops."""
    loop = asyncio.get_running_loop()
    queue: "asyncio.Queue[Any]" = asyncio.Queue(maxsize=64)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in make():
                if stop.is_set():
                    return
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            item = _DONE
        except BaseException as e:  # handed to the caller
            item = e
        if not stop.is_set():
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class AsyncKV:
    """``KV``, awaitable."""

    def __init__(self, kv: KV):
        self._kv = kv
        self.namespace = kv.namespace

    async def get(self, key: str, *, stale: bool = False) -> Optional[bytes]:
        return await _call(self._kv.get, key, stale=stale)

    async def entry(self, key: str, *, stale: bool = False) -> Optional[Entry]:
        return await _call(self._kv.entry, key, stale=stale)

    async def put(self, key: str, value: Value, **kw: Any) -> bool:
        return await _call(self._kv.put, key, value, **kw)

    async def delete(self, key: str, **kw: Any) -> bool:
        return await _call(self._kv.delete, key, **kw)

    async def list(self, prefix: str = "", *, stale: bool = False) -> List[Entry]:
        return await _call(self._kv.list, prefix, stale=stale)

    async def keys(self, prefix: str = "", **kw: Any) -> List[str]:
        return await _call(self._kv.keys, prefix, **kw)

    def watch(self, key: str, **kw: Any) -> AsyncIterator[Event]:
        return _iterate(lambda: self._kv.watch(key, **kw))

    def lock(self, key: str, value: Value = b"", **kw: Any) -> "AsyncLock":
        return AsyncLock(self._kv.lock(key, value, **kw))


class AsyncLock:
    """``Lock`` as an async context manager."""

    def __init__(self, lock: Lock):
        self._lock = lock

    @property
    def fence(self) -> int:
        return self._lock.fence

    async def __aenter__(self) -> "AsyncLock":
        await _call(self._lock.acquire)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await _call(self._lock.release)


class AsyncLease:
    """``Lease`` as an async context manager (kept alive by a thread)."""

    def __init__(self, lease: Lease):
        self.lease = lease
        self.id = lease.id
        self.ttl = lease.ttl

    async def keepalive(self) -> float:
        return await _call(self.lease.keepalive)

    async def revoke(self) -> int:
        return await _call(self.lease.revoke)

    async def __aenter__(self) -> "AsyncLease":
        self.lease.start_keepalive()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.revoke()


class AsyncClient:
    """``Client``'s operations, awaitable; the same arguments."""

    def __init__(self, nodes: List[str], certs: Optional[str] = None, **kw: Any):
        self.sync = Client(nodes, certs, **kw)

    def kv(self, namespace: str = "default") -> AsyncKV:
        return AsyncKV(self.sync.kv(namespace))

    async def lease(self, ttl: float, namespace: str = "default") -> AsyncLease:
        return AsyncLease(await _call(self.sync.lease, ttl, namespace))

    async def commit(self, txn: Txn) -> TxnResult:
        """Commits a transaction built with ``txn()``."""
        return await _call(txn.commit)

    def txn(self) -> Txn:
        return self.sync.txn()

    async def append(self, data: bytes) -> int:
        """Appends an opaque entry to the log (``Log.append``)."""
        return await _call(self.sync.log.append, data)

    async def read_log(self, start: int = 1, end: Optional[int] = None) -> List[LogEntry]:
        return await _call(self.sync.log.read, start, end)

    def follow(self, start: Optional[int] = None) -> AsyncIterator[LogEntry]:
        return _iterate(lambda: self.sync.log.follow(start))

    async def status(self) -> Dict[str, Any]:
        return await _call(self.sync.status)

    async def health(self) -> Dict[str, Any]:
        return await _call(self.sync.health)

    async def close(self) -> None:
        self.sync.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
