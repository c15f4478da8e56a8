"""Leases (etcd's) with a background keepalive, and locks on them
(Consul's) as context managers."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from .errors import NotFound, RaftstackError

if TYPE_CHECKING:
    from .client import Client
    from .kv import KV


class Lease:
    """A granted lease. When it ends (its TTL passes without a
    keepalive, or it is revoked) the keys attached to it are deleted and
    the locks it holds are freed."""

    def __init__(self, client: "Client", id: int, ttl: float, namespace: str):
        self._c = client
        self.id = id
        self.ttl = ttl
        self.namespace = namespace
        self.lost = threading.Event()
        """Set once the background keepalive found the lease gone."""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _path(self, suffix: str = "") -> str:
        return f"/v1/lease/{self.id}{suffix}"

    def keepalive(self) -> float:
        """Renews the lease for a full TTL; raises ``NotFound`` once it
        has ended."""
        a = self._c.transport.request("PUT", self._path("/keepalive"), {"ns": self.namespace})
        return float(a.json()["TTL"])

    def info(self) -> Dict[str, Any]:
        """``{"ID", "Namespace", "TTL", "Remaining", "Keys"}``."""
        return self._c.transport.request("GET", self._path(), {"ns": self.namespace}).json()

    def revoke(self) -> int:
        """Ends the lease now; returns how many keys that deleted (0 if it
        had ended already)."""
        self.stop_keepalive()
        try:
            params = {"ns": self.namespace}
            v = self._c.session_write("DELETE", self._path(), params, None).json()
        except NotFound:
            return 0
        return int(v.get("Deleted", 0))

    def start_keepalive(self) -> None:
        """Renews the lease every third of its TTL from a daemon thread
        until ``stop_keepalive``; sets ``lost`` if the lease ended."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"lease-{self.id}", daemon=True)
            self._thread.start()

    def stop_keepalive(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.keepalive()
            except NotFound:
                self.lost.set()
                return
            except RaftstackError:
                continue  # no node now: the next round tries again

    def __enter__(self) -> "Lease":
        self.start_keepalive()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.revoke()


class Lock:
    """A held lock on a key, on a lease of its own (``KV.lock``)."""

    def __init__(self, kv: "KV", key: str, value: bytes, ttl: float, timeout: Optional[float]):
        self._kv = kv
        self.key = key
        self._value = value
        self._ttl = ttl
        self._timeout = timeout
        self.lease: Optional[Lease] = None
        self.fence = 0
        """The lock's fencing value: larger for every later holder."""

    def acquire(self) -> "Lock":
        c = self._kv._c
        self.lease = c.lease(self._ttl, self._kv.namespace)
        self.lease.start_keepalive()
        try:
            return self._wait_until_held()
        except BaseException:
            # Not held (timed out, no node, interrupted): let the lease go
            # with it, rather than keep it alive for nothing (if no node
            # takes the revoke, it expires: its keepalive has stopped).
            try:
                self.lease.revoke()
            except RaftstackError:
                pass
            self.lease = None
            raise

    def _wait_until_held(self) -> "Lock":
        assert self.lease is not None
        c = self._kv._c
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        path = self._kv._path(self.key)
        while True:
            params = {"ns": self._kv.namespace, "acquire": self.lease.id}
            a = c.session_write("PUT", path, params, self._value)
            if a.json() is True:
                self.fence = a.index
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"lock {self.key!r} not acquired in {self._timeout} s")
            self._wait_for_change(a.index, deadline)

    def _wait_for_change(self, index: int, deadline: Optional[float]) -> None:
        """A blocking query: back when the key changed after ``index``."""
        wait = 5.0 if deadline is None else max(0.1, min(5.0, deadline - time.monotonic()))
        params = {"ns": self._kv.namespace, "index": index, "wait": f"{int(wait * 1000)}ms"}
        self._kv._c.transport.request("GET", self._kv._path(self.key), params, ok=(404,))

    def release(self) -> None:
        """Frees the lock and revokes its lease."""
        if self.lease is None:
            return
        params = {"ns": self._kv.namespace, "release": self.lease.id}
        try:
            self._kv._c.session_write("PUT", self._kv._path(self.key), params, b"")
        finally:
            self.lease.revoke()
            self.lease = None

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
