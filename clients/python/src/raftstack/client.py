"""The client: one per application thread that writes (writes through one
client are sequential, so its session's sequence numbers arrive in order);
reads may be shared."""

from __future__ import annotations

import random
import threading
from typing import Any, Dict, List, Optional, Tuple

from .kv import KV
from .lease import Lease
from .log import Log
from .transport import Answer, Params, Transport, tls_context
from .txn import Txn


class Client:
    """A client of a raftstack cluster.

    ``nodes``: command ports as ``"host:port"`` (any one is enough to
    start: ``discover()`` adds the others). ``certs``: a directory with
    ``transport-ca.pem``, ``transport-client.crt`` and
    ``transport-client.key`` (``cargo xtask certs``), or give ``ca``,
    ``cert`` and ``key`` files. ``client_id``: the session's id (random by
    default; keep it across restarts of a process only together with its
    last sequence number, ``seq``).
    """

    def __init__(
        self,
        nodes: List[str],
        certs: Optional[str] = None,
        *,
        ca: Optional[str] = None,
        cert: Optional[str] = None,
        key: Optional[str] = None,
        timeout: float = 10.0,
        retry_for: float = 15.0,
        client_id: Optional[int] = None,
        seq: int = 0,
    ):
        ctx = tls_context(certs, ca, cert, key)
        self.transport = Transport(nodes, ctx, timeout, retry_for)
        self.client_id = client_id if client_id is not None else random.getrandbits(63) + 1
        self.seq = seq
        self._write = threading.Lock()
        self.log = Log(self)

    def kv(self, namespace: str = "default") -> KV:
        """The keys of ``namespace`` (created with its first key)."""
        return KV(self, namespace)

    def session_write(
        self,
        method: str,
        path: str,
        params: Params,
        body: Optional[bytes],
        ok: Tuple[int, ...] = (),
    ) -> Answer:
        """A write under this client's session: numbered once, retried on
        any node with the same number until one answers, so it applies
        once. Returns the node's answer (2xx, or a status in ``ok``)."""
        with self._write:
            self.seq += 1
            p = dict(params)
            p.update(client=self.client_id, seq=self.seq)
            return self.transport.request(method, path, p, body, ok=ok)

    def lease(self, ttl: float, namespace: str = "default") -> Lease:
        """Grants a lease of ``ttl`` seconds (1 s to 24 h). Use it as a
        context manager to keep it alive in the background and revoke it
        at the end, or call ``keepalive()`` yourself."""
        params = {"ttl": f"{int(ttl * 1000)}ms", "ns": namespace}
        v = self.session_write("PUT", "/v1/lease", params, None).json()
        return Lease(self, int(v["ID"]), float(v["TTL"]), namespace)

    def leases(self, namespace: str = "default") -> Dict[int, float]:
        """The namespace's leases and their TTLs."""
        listed = self.transport.request("GET", "/v1/leases", {"ns": namespace}).json()
        return {int(v["ID"]): float(v["TTL"]) for v in listed}

    def txn(self) -> Txn:
        """A transaction: operations added to it apply in one log entry,
        all or none (``Txn.commit``)."""
        return Txn(self)

    def status(self) -> Dict[str, Any]:
        """The status of the node that answers (``GET /v1/status``)."""
        return self.transport.request("GET", "/v1/status").json()

    def health(self) -> Dict[str, Any]:
        """``{"health": green|yellow|red, "reasons": [...]}`` of the node
        that answers; red is an answer here, not an error."""
        return self.transport.request("GET", "/v1/health", ok=(503,)).json()

    def leader(self) -> str:
        """The leader's peer address (``""`` while there is none)."""
        return self.transport.request("GET", "/v1/status/leader").json()

    def namespaces(self) -> Dict[str, int]:
        """The namespaces and how many keys each holds."""
        listed = self.transport.request("GET", "/v1/namespaces").json()
        return {n["Namespace"]: n["Keys"] for n in listed}

    def discover(self) -> List[str]:
        """Adds every member's command port, as the membership knows it,
        to the nodes this client uses; returns them all."""
        for m in self.status().get("members", []):
            port = m.get("command_port")
            if port and port not in self.transport.nodes:
                self.transport.nodes.append(port)
        return list(self.transport.nodes)

    def close(self) -> None:
        """Closes this thread's connections."""
        for node in list(self.transport.nodes):
            self.transport._drop(node)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
