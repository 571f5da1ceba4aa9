"""Per-shopper limits that hold across processes: a token bucket for turns and caps on open sockets.

Both live in Django's cache, which is Redis when ``REDIS_URL`` is set, so every process sees the same numbers; on
one process the local-memory cache is enough. Cache reads and writes are not one atomic step, so two processes
racing may each admit one extra request; a limit that is off by one under a race is fine for abuse protection,
and it keeps the code free of backend-specific scripts.

Keys are hashes: a shopper id or an IP address never appears in a cache key.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest

#: A socket counter outlives its last change by this long, so counts leaked by a killed process fade away.
COUNTER_TTL = 15 * 60


async def _cache(method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a method of the default cache without queueing behind database work.

    Django's ``cache.aget`` and friends run the sync method through ``sync_to_async(thread_sensitive=True)``: the
    one thread every database call of the process queues on, twice per message a shopper sends. A local-memory
    cache needs no thread at all; a networked one (Redis) gets a worker thread of its own.
    """
    backend = caches["default"]
    call = getattr(backend, method)
    if isinstance(backend, LocMemCache):
        return call(*args, **kwargs)
    return await sync_to_async(call, thread_sensitive=False)(*args, **kwargs)


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:24]
    return f"vizochok:{kind}:{digest}"


@dataclass(frozen=True, slots=True)
class Bucket:
    """``burst`` tokens at most, refilled at ``per_minute`` tokens a minute."""

    per_minute: float
    burst: float

    async def take(self, who: str, *, now: float | None = None) -> float:
        """Take one token for ``who``: 0 if allowed, else the seconds until a token is available."""
        if self.per_minute <= 0:
            return 0.0
        key = _key("bucket", who)
        now = time.time() if now is None else now
        rate = self.per_minute / 60.0
        stored = await _cache("get", key)
        tokens, stamp = stored if isinstance(stored, tuple) and len(stored) == 2 else (self.burst, now)
        tokens = min(self.burst, tokens + max(0.0, now - stamp) * rate)
        if tokens < 1.0:
            await _cache("set", key, (tokens, now), timeout=int(self.burst / rate) + 60)
            return (1.0 - tokens) / rate
        await _cache("set", key, (tokens - 1.0, now), timeout=int(self.burst / rate) + 60)
        return 0.0


def turn_bucket() -> Bucket:
    return Bucket(
        per_minute=float(settings.VIZOCHOK_TURNS_PER_MINUTE),
        burst=float(settings.VIZOCHOK_TURN_BURST),
    )


def address_bucket() -> Bucket:
    """Turns per client address, whatever cookies it sends: a new visitor id costs a client one GET."""
    return Bucket(
        per_minute=float(settings.VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS),
        burst=float(settings.VIZOCHOK_TURN_BURST_PER_ADDRESS),
    )


class SocketCaps:
    """Open browser sockets per session and per client IP, counted in the cache."""

    def __init__(self) -> None:
        self.per_session = settings.VIZOCHOK_MAX_SOCKETS_PER_SESSION
        self.per_ip = settings.VIZOCHOK_MAX_SOCKETS_PER_IP

    async def claim(self, session: str, ip: str) -> list[str] | None:
        """Count one socket for ``session`` and ``ip``: the claimed keys, or None (nothing kept) if over a cap."""
        claimed: list[str] = []
        for key, cap in ((_key("sockets-session", session), self.per_session), (_key("sockets-ip", ip), self.per_ip)):
            if cap <= 0:
                continue
            await _cache("add", key, 0, timeout=COUNTER_TTL)
            try:
                count = await _cache("incr", key)
            except ValueError:  # expired between add and incr
                await _cache("set", key, 1, timeout=COUNTER_TTL)
                count = 1
            await _cache("touch", key, COUNTER_TTL)
            claimed.append(key)
            if count > cap:
                await self.release(claimed)
                return None
        return claimed

    @staticmethod
    async def release(keys: list[str]) -> None:
        for key in keys:
            try:
                if await _cache("decr", key) < 0:
                    await _cache("set", key, 0, timeout=COUNTER_TTL)
            except ValueError:
                pass  # the counter expired: nothing to give back


def client_address(scope: Mapping[str, Any]) -> str:
    """The address a socket cap counts: the one our own proxies saw, never one the client wrote.

    With ``VIZOCHOK_TRUSTED_PROXY_HOPS = N`` each of our N proxies appended the address it saw to X-Forwarded-For,
    so the N-th entry from the right is the client as the outermost proxy saw it; anything further left came from
    the client and can name anybody (``daphne --proxy-headers`` puts the leftmost one in ``scope["client"]``, so it
    is not used then). A header with fewer entries than proxies did not pass them all: the peer address counts.
    """
    headers = scope.get("headers", [])
    forwarded = [value.decode("latin-1") for name, value in headers if name.lower() == b"x-forwarded-for"]
    client = scope.get("client")
    return _trusted_address(forwarded, str(client[0]) if client else "unknown")


def request_client_address(request: HttpRequest) -> str | None:
    """The same for an HTTP request (django-axes counts admin login failures per this address).

    None when there is no valid address (a request built in code, a proxy that sent garbage): axes stores it in an
    IP address column, which PostgreSQL checks.
    """
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    address = _trusted_address([forwarded] if forwarded else [], str(request.META.get("REMOTE_ADDR") or ""))
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _trusted_address(forwarded_headers: list[str], peer: str) -> str:
    hops = settings.VIZOCHOK_TRUSTED_PROXY_HOPS
    if hops > 0:
        entries = [entry.strip() for header in forwarded_headers for entry in header.split(",") if entry.strip()]
        if len(entries) >= hops:
            return entries[-hops]
    return peer
