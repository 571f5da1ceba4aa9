"""Reconnection delays, identical for the server-side relay and the browser.

The reference (§12) gives the SDK's schedule: ``min(1000 * 2^attempt, 10000)`` ms with ±25 % jitter, at most 30
attempts, attempt counting from 0. The relay renders :meth:`Backoff.as_js` into the page so the browser's
reconnect loop uses the same numbers as :func:`chat.vizochok.client.open_session`; keep both in this module.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .errors import AUTH_CLOSE_CODES

INITIAL_DELAY = 1.0
MAXIMUM_DELAY = 10.0
JITTER = 0.25
MAX_ATTEMPTS = 30
#: Beyond this exponent the delay is at the cap for any sane ``initial``; also keeps ``2.0 ** n`` finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with symmetric jitter; ``random`` is injectable so tests get exact delays."""

    initial: float = INITIAL_DELAY
    maximum: float = MAXIMUM_DELAY
    jitter: float = JITTER
    max_attempts: int = MAX_ATTEMPTS
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative")

    def base(self, attempt: int) -> float:
        """The delay before jitter: doubling from ``initial``, capped at ``maximum``."""
        if attempt < 0:
            raise ValueError("attempt counts from 0")
        return min(self.initial * 2.0 ** min(attempt, _MAX_EXPONENT), self.maximum)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); jitter spreads reconnecting clients apart."""
        return self.base(attempt) * (1 + self.jitter * (2 * self.random() - 1))

    def delays(self) -> Iterator[float]:
        """One delay per allowed retry, ``max_attempts`` in all."""
        for attempt in range(self.max_attempts):
            yield self.delay(attempt)

    def as_js(self) -> dict[str, float | int | list[int]]:
        """The schedule in the units and names the browser's reconnect code reads (milliseconds)."""
        return {
            "initialMs": round(self.initial * 1000),
            "maximumMs": round(self.maximum * 1000),
            "jitter": self.jitter,
            "maxAttempts": self.max_attempts,
            "noReconnectCodes": sorted(AUTH_CLOSE_CODES),
        }


__all__ = ["INITIAL_DELAY", "JITTER", "MAXIMUM_DELAY", "MAX_ATTEMPTS", "Backoff"]
