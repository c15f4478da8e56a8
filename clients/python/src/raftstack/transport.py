"""HTTPS to the nodes: mutual TLS, keep-alive connections per thread, and
moving to another node when one does not serve.

Any node serves any request (a follower forwards writes to the leader), so
the transport needs no leader: it keeps using the node that last answered
and moves on when that node is down, has no leader to forward to, or
times out.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote

from .errors import Unavailable, from_answer

Params = Mapping[str, Union[str, int, bool, None]]


@dataclass
class Answer:
    """A node's answer: status, headers (lower-case names), body."""

    status: int
    headers: Dict[str, str]
    body: bytes
    node: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def index(self) -> int:
        """``X-Raft-Index``: the log index the answer reflects (0 if absent)."""
        return int(self.headers.get("x-raft-index", "0") or 0)


def tls_context(
    certs: Optional[str] = None,
    ca: Optional[str] = None,
    cert: Optional[str] = None,
    key: Optional[str] = None,
) -> ssl.SSLContext:
    """A client context for the cluster: its CA, and this client's
    certificate (``cargo xtask certs`` writes ``transport-ca.pem``,
    ``transport-client.crt`` and ``transport-client.key`` into ``certs``).
    """
    if certs is not None:
        ca = ca or os.path.join(certs, "transport-ca.pem")
        cert = cert or os.path.join(certs, "transport-client.crt")
        key = key or os.path.join(certs, "transport-client.key")
    if ca is None:
        raise ValueError("give certs= (a directory) or ca= (the cluster CA file)")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def query(params: Optional[Params]) -> str:
    """A query string: ``True`` is a bare flag, ``None``/``False`` left out."""
    parts = []
    for k, v in (params or {}).items():
        if v is None or v is False:
            continue
        parts.append(quote(k) if v is True else f"{quote(k)}={quote(str(v), safe='')}")
    return ("?" + "&".join(parts)) if parts else ""


class Transport:
    """Requests to whichever node of ``nodes`` (``"host:port"``) serves.

    ``timeout`` bounds one attempt; ``retry_for`` bounds all attempts of
    one request, across nodes.
    """

    def __init__(
        self,
        nodes: List[str],
        context: ssl.SSLContext,
        timeout: float = 10.0,
        retry_for: float = 15.0,
    ):
        if not nodes:
            raise ValueError("give at least one node (host:port)")
        self.nodes = list(dict.fromkeys(nodes))
        self.context = context
        self.timeout = timeout
        self.retry_for = retry_for
        self._current = 0
        self._local = threading.local()

    # ----- connections -----

    def _conn(self, node: str, timeout: Optional[float]) -> http.client.HTTPSConnection:
        pool = self._local.__dict__.setdefault("pool", {})
        c = pool.get(node)
        if c is None:
            host, port = node.rsplit(":", 1)
            c = http.client.HTTPSConnection(host, int(port), context=self.context, timeout=timeout)
            pool[node] = c
        return c

    def _drop(self, node: str) -> None:
        c = self._local.__dict__.get("pool", {}).pop(node, None)
        if c is not None:
            c.close()

    def _order(self) -> List[str]:
        i = self._current % len(self.nodes)
        return self.nodes[i:] + self.nodes[:i]

    def _prefer(self, node: str) -> None:
        if node in self.nodes:
            self._current = self.nodes.index(node)

    # ----- requests -----

    def once(
        self,
        node: str,
        method: str,
        path: str,
        params: Optional[Params] = None,
        body: Optional[bytes] = None,
        fresh: bool = False,
    ) -> Answer:
        """One attempt at one node; raises ``OSError`` or
        ``http.client.HTTPException`` when it does not answer. ``fresh``:
        on a new connection (a kept-alive one the node closed while idle
        fails only once the request is written, which a write without a
        session cannot tell from a lost answer)."""
        if fresh:
            self._drop(node)
        c = self._conn(node, self.timeout)
        try:
            c.request(method, path + query(params), body=body, headers=_headers(body))
            r = c.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self._drop(node)
            raise
        headers = {k.lower(): v for k, v in r.getheaders()}
        if r.will_close:
            self._drop(node)
        return Answer(r.status, headers, data, node)

    def request(
        self,
        method: str,
        path: str,
        params: Optional[Params] = None,
        body: Optional[bytes] = None,
        retry_safe: bool = True,
        ok: Tuple[int, ...] = (),
    ) -> Answer:
        """Sends the request to the nodes in turn until one answers it.

        ``retry_safe`` is false for a write without a session: then only
        a connection that was refused outright is retried, and anything
        else after sending raises ``Unavailable(outcome_unknown=True)``.
        A 2xx answer, or one whose status is in ``ok``, is returned; any
        other raises the error for it.
        """
        deadline = time.monotonic() + self.retry_for
        last: Optional[BaseException] = None
        pause = 0.05
        while True:
            for node in self._order():
                try:
                    a = self.once(node, method, path, params, body, fresh=not retry_safe)
                except ConnectionRefusedError as e:
                    last = e
                    continue
                except (OSError, http.client.HTTPException) as e:
                    if not retry_safe:
                        raise Unavailable(
                            f"{node} did not answer: {e}", outcome_unknown=True
                        ) from e
                    last = e
                    continue
                if a.status == 503:
                    if not retry_safe:
                        err = from_answer(a.status, _json_or_none(a.body))
                        raise Unavailable(
                            str(err), outcome_unknown=True, status=503, body=err.body
                        )
                    last = from_answer(a.status, _json_or_none(a.body))
                    continue
                self._prefer(node)
                if 200 <= a.status < 300 or a.status in ok:
                    return a
                raise from_answer(a.status, _json_or_none(a.body))
            if time.monotonic() >= deadline:
                raise Unavailable(f"no node served {method} {path} in {self.retry_for:g} s: {last}")
            time.sleep(pause * (1 + random.random()))
            pause = min(pause * 2, 1.0)

    def stream(
        self, node: str, path: str, params: Optional[Params], read_timeout: Optional[float]
    ) -> Iterator[Any]:
        """A GET whose answer is one JSON document per line, from one node,
        on a connection of its own; ends when the node ends it. Raises
        the node's error for a non-2xx answer."""
        host, port = node.rsplit(":", 1)
        c = http.client.HTTPSConnection(host, int(port), context=self.context, timeout=self.timeout)
        try:
            c.request("GET", path + query(params))
            r = c.getresponse()
            if r.status != 200:
                raise from_answer(r.status, _json_or_none(r.read()))
            if c.sock is not None:
                c.sock.settimeout(read_timeout)
            while True:
                line = r.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            c.close()


def _headers(body: Optional[bytes]) -> Dict[str, str]:
    h = {"Accept": "application/json"}
    if body is not None:
        h["Content-Type"] = "application/octet-stream"
    return h


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return {"error": body.decode("utf-8", "replace")}


__all__ = ["Answer", "Transport", "tls_context", "query"]
