"""A client for raftstack's HTTPS command port.

    from raftstack import Client
    c = Client(["127.0.0.1:7501", "127.0.0.1:7502"], certs="certs")
    c.kv("team1").put("colour", "blue")
    print(c.kv("team1").get("colour"))
"""

from .aio import AsyncClient, AsyncKV, AsyncLease, AsyncLock
from .client import Client
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    RaftstackError,
    Unavailable,
)
from .kv import KV, Entry, Event
from .lease import Lease, Lock
from .log import Log, LogEntry
from .txn import Txn, TxnResult

__all__ = [
    "Client",
    "AsyncClient",
    "AsyncKV",
    "AsyncLease",
    "AsyncLock",
    "KV",
    "Entry",
    "Event",
    "Lease",
    "Lock",
    "Log",
    "LogEntry",
    "Txn",
    "TxnResult",
    "RaftstackError",
    "BadRequest",
    "Forbidden",
    "NotFound",
    "Conflict",
    "Gone",
    "Unavailable",
]
