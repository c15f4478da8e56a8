"""A client for raftstack's HTTPS command port.

    from raftstack import Client
    c = Client(["127.0.0.1:7501", "127.0.0.1:7502"], certs="certs")
    c.kv("team1").put("colour", "blue")
    print(c.kv("team1").get("colour"))
"""

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
from .log import Log, LogEntry

__all__ = [
    "Client",
    "KV",
    "Entry",
    "Event",
    "Log",
    "LogEntry",
    "RaftstackError",
    "BadRequest",
    "Forbidden",
    "NotFound",
    "Conflict",
    "Gone",
    "Unavailable",
]
