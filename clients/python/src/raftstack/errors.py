"""The errors the client raises, one class per kind of answer."""

from __future__ import annotations

from typing import Any, Optional


class RaftstackError(Exception):
    """Any error answered by a node, or no answer at all.

    ``status`` is the HTTP status (``None`` when no node answered) and
    ``body`` the node's JSON error, when it sent one.
    """

    def __init__(self, message: str, status: Optional[int] = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class BadRequest(RaftstackError):
    """400: a malformed request, bad namespace or key, unknown parameter."""


class Forbidden(RaftstackError):
    """403: the client certificate's role does not allow this."""


class NotFound(RaftstackError):
    """404: no such key, entry or lease."""


class Conflict(RaftstackError):
    """409: a refused operation (a stale session sequence, say)."""


class Gone(RaftstackError):
    """410: compacted away (a log entry, or a watch's start)."""


class Unavailable(RaftstackError):
    """No node could serve the request in time (503s, timeouts, refused
    connections on every node).

    ``outcome_unknown`` is true when a write without a session may have
    been sent: it may still commit. Writes through ``KV`` carry a
    session, so the client retries those safely and this stays false
    for them unless every retry failed.
    """

    def __init__(self, message: str, outcome_unknown: bool = False, **kw: Any):
        super().__init__(message, **kw)
        self.outcome_unknown = outcome_unknown


_BY_STATUS = {400: BadRequest, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone}


def from_answer(status: int, body: Any) -> RaftstackError:
    """The error for a node's non-2xx answer."""
    message = body.get("error") if isinstance(body, dict) else None
    message = message or f"HTTP {status}"
    cls = _BY_STATUS.get(status, RaftstackError)
    if status == 503:
        return Unavailable(message, status=status, body=body)
    return cls(message, status=status, body=body)
