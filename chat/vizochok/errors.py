"""What can go wrong talking to the upstream, as exceptions a relay can branch on.

The split follows what a caller must *do* about each failure rather than where it happened: retry with backoff
(:class:`UpstreamUnavailable`, a plain :class:`UpstreamClosed`, :class:`ConnectionLimited`), give up and tell the
user (:class:`AuthRejected`, :class:`ConversationLimit`), or end the turn (:class:`TurnTimeout`).
:func:`should_retry` is the single place that decision is written down (reference §10.1, §12).

No Django imports: the sandbox tests and the relay share this module.
"""

from __future__ import annotations

from .messages import ErrorMessage

#: Close codes after which a client must never reconnect (reference §10.1, §12: auth errors).
AUTH_CLOSE_CODES = frozenset({4001, 4002, 4003, 4004})
#: The API key already holds its concurrent connections (reference §14); back off, then try again.
CONNECTION_LIMIT_CLOSE_CODE = 4029
#: What websockets reports when the TCP connection ended without a close frame.
ABNORMAL_CLOSE_CODE = 1006


class UpstreamError(Exception):
    """Base of every failure of the upstream client."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached: refused connection, failed HTTP upgrade, or a handshake timeout."""


class HandshakeTimeout(UpstreamUnavailable):
    """The upstream accepted the connection but did not complete the upgrade or authenticate in time.

    Not retried: an upstream that takes connections and then stays silent would otherwise hold the shopper (and an
    upstream slot) for every attempt's full timeout plus the backoff between them (83 s was seen).
    """


class UpstreamClosed(UpstreamError):
    """The upstream closed (or dropped) a connection we did not ask to close."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"upstream closed the connection (code {code}{f', {reason!r}' if reason else ''})")

    def __reduce__(self) -> tuple[type[UpstreamClosed], tuple[int | None, str]]:
        return (type(self), (self.code, self.reason))


class AuthRejected(UpstreamClosed):
    """Closed with 4001–4004: the key, the store or the auth frame was refused. Retrying cannot help."""


class ConnectionLimited(UpstreamClosed):
    """Closed with 4029: too many connections on this key. Worth retrying once others have closed."""


class StartRefused(UpstreamError):
    """The upstream answered ``auth`` with an ``error`` frame instead of starting or restoring a conversation."""

    def __init__(self, frame: ErrorMessage) -> None:
        self.frame = frame
        self.code = frame.code
        super().__init__(f"upstream refused to start a conversation: {frame.code}")


class ConversationLimit(StartRefused):
    """``user_conversation_limit``: this user may open no more conversations today (reference §10.2)."""

    def __init__(self, frame: ErrorMessage) -> None:
        super().__init__(frame)
        self.limit = frame.limit


class TurnTimeout(UpstreamError):
    """A turn took longer than the configured deadline without a ``response_complete`` or ``error``."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"no end of turn within {timeout:g} s")


class InvalidUpstreamURL(UpstreamError, ValueError):
    """The configured URL is not a WebSocket URL; a configuration error, never retried."""


def closed_error(code: int | None, reason: str = "") -> UpstreamClosed:
    """The exception for a close with ``code``: auth codes and the connection limit get their own classes."""
    if code in AUTH_CLOSE_CODES:
        return AuthRejected(code, reason)
    if code == CONNECTION_LIMIT_CLOSE_CODE:
        return ConnectionLimited(code, reason)
    return UpstreamClosed(code, reason)


def refused_error(frame: ErrorMessage) -> StartRefused:
    """The exception for an ``error`` frame received instead of the start frame."""
    if frame.code == "user_conversation_limit":
        return ConversationLimit(frame)
    return StartRefused(frame)


def should_retry(exc: BaseException) -> bool:
    """Whether opening a session again (after a backoff delay) can succeed where ``exc`` failed.

    Auth closes, daily limits and an upstream that stays silent after accepting the connection are final;
    refused connections, ordinary closes, the per-key connection limit and retryable ``error`` codes (rate limit,
    busy agent, internal error) are not.
    """
    if isinstance(exc, (AuthRejected, ConversationLimit, InvalidUpstreamURL, TurnTimeout, HandshakeTimeout)):
        return False
    if isinstance(exc, StartRefused):
        return exc.code in ErrorMessage.RETRYABLE
    return isinstance(exc, (UpstreamUnavailable, UpstreamClosed))


__all__ = [
    "ABNORMAL_CLOSE_CODE",
    "AUTH_CLOSE_CODES",
    "CONNECTION_LIMIT_CLOSE_CODE",
    "AuthRejected",
    "ConnectionLimited",
    "ConversationLimit",
    "HandshakeTimeout",
    "InvalidUpstreamURL",
    "StartRefused",
    "TurnTimeout",
    "UpstreamClosed",
    "UpstreamError",
    "UpstreamUnavailable",
    "closed_error",
    "refused_error",
    "should_retry",
]
