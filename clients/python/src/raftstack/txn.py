"""Transactions (Consul's ``/v1/txn``): KV operations applied in one log
entry, all or none, in order."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from .kv import Entry

if TYPE_CHECKING:
    from .client import Client


@dataclass
class TxnResult:
    """``ok``: every operation held and the writes applied. ``results``:
    per operation that returns keys, the key (with its value for reads);
    ``errors``: the failing operations, ``{"OpIndex", "What"}``; ``index``:
    the log entry's index."""

    ok: bool
    results: List[Entry]
    errors: List[Dict[str, Any]]
    index: int


class Txn:
    """Operations to apply at once; each method adds one, and returns the
    transaction so they chain."""

    def __init__(self, client: "Client"):
        self._c = client
        self.ops: List[Dict[str, Any]] = []

    def _op(self, verb: str, key: str, ns: str, value: Optional[Union[bytes, str]] = None, index: Optional[int] = None) -> "Txn":
        op: Dict[str, Any] = {"Verb": verb, "Key": key, "Namespace": ns}
        if value is not None:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            op["Value"] = base64.b64encode(raw).decode()
        if index is not None:
            op["Index"] = index
        self.ops.append({"KV": op})
        return self

    def set(self, key: str, value: Union[bytes, str], ns: str = "default") -> "Txn":
        return self._op("set", key, ns, value)

    def cas(self, key: str, value: Union[bytes, str], index: int, ns: str = "default") -> "Txn":
        """Writes if the key's modify index is ``index`` (0: it does not exist)."""
        return self._op("cas", key, ns, value, index)

    def get(self, key: str, ns: str = "default") -> "Txn":
        return self._op("get", key, ns)

    def get_tree(self, prefix: str, ns: str = "default") -> "Txn":
        return self._op("get-tree", prefix, ns)

    def check_index(self, key: str, index: int, ns: str = "default") -> "Txn":
        return self._op("check-index", key, ns, index=index)

    def check_not_exists(self, key: str, ns: str = "default") -> "Txn":
        return self._op("check-not-exists", key, ns)

    def delete(self, key: str, ns: str = "default") -> "Txn":
        return self._op("delete", key, ns)

    def delete_tree(self, prefix: str, ns: str = "default") -> "Txn":
        return self._op("delete-tree", prefix, ns)

    def delete_cas(self, key: str, index: int, ns: str = "default") -> "Txn":
        return self._op("delete-cas", key, ns, index=index)

    def commit(self) -> TxnResult:
        """Applies the operations (exactly once, through the session).
        A failed check is a result with ``ok`` false, not an error."""
        body = json.dumps(self.ops).encode()
        a = self._c.session_write("PUT", "/v1/txn", {}, body, ok=(409,))
        v = a.json()
        results = [Entry.from_json(r["KV"]) for r in v.get("Results") or []]
        return TxnResult(a.status == 200, results, v.get("Errors") or [], int(v.get("Index", 0)))
