"""Liveness and readiness for load balancers and orchestrators.

``/healthz`` answers as long as the process serves HTTP (restart it if not). ``/readyz`` also checks what a turn
needs: the database, Redis (when configured) and the upstream, with a real ``auth`` round trip: a TCP connection
alone says nothing about an upstream that accepts sockets and never authenticates (a turn would then wait for its
auth timeout every time). The API key allows three sockets in all, so the round trip is brief (closed once the
conversation's start frame came, the probe's own conversation restored each time) and its outcome is cached for
``VIZOCHOK_READY_UPSTREAM_CACHE`` seconds per process: probes every second cost one upstream socket per process
every few seconds. An upstream that refuses the probe with 4029 (all sockets in use) answered, so it counts as
ready.
The answers name the checks and their outcome only, never a URL, host or key.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chat.persistence import db
from chat.vizochok.client import UpstreamConfig, probe
from chat.vizochok.errors import StartRefused

PROBE_TIMEOUT = 2.0


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured"
    from redis import Redis

    client = Redis.from_url(settings.REDIS_URL, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


#: The probe's ``auth.user_id``: its own, so no shopper's per-user limits are touched by readiness checks.
PROBE_USER = "relay-readiness-probe"


class UpstreamProbe:
    """The last auth round trip's outcome, per upstream (URL, key, store), shared by concurrent requests."""

    def __init__(self) -> None:
        self._outcomes: dict[tuple[str, str, str], tuple[float, str | BaseException]] = {}
        #: The conversation each upstream started for the probe: named in the next ``auth`` to restore it ("" where
        #: the upstream refused an ``auth`` naming one).
        self._conversations: dict[tuple[str, str, str], str] = {}
        self._running: dict[tuple[str, str, str], asyncio.Task[str | BaseException]] = {}

    async def check(self) -> str:
        key = (settings.VIZOCHOK_WS_URL, settings.VIZOCHOK_API_KEY, settings.VIZOCHOK_STORE_ID)
        cached = self._outcomes.get(key)
        if cached is not None and time.monotonic() - cached[0] < settings.VIZOCHOK_READY_UPSTREAM_CACHE:
            return _outcome(cached[1])
        loop = asyncio.get_running_loop()
        task = self._running.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._running[key] = loop.create_task(self._round_trip(key))
        return _outcome(await asyncio.shield(task))

    async def _round_trip(self, key: tuple[str, str, str]) -> str | BaseException:
        url, token, store_id = key
        config = UpstreamConfig(
            url=url,
            token=token,
            store_id=store_id,
            user_id=PROBE_USER,
            open_timeout=PROBE_TIMEOUT,
            auth_timeout=PROBE_TIMEOUT,
            close_timeout=1.0,
        )
        outcome: str | BaseException
        try:
            named = self._conversations.get(key) or None
            try:
                result = await probe(config, named)
            except StartRefused as exc:
                if exc.code != "invalid_json" or named is None:
                    raise
                self._conversations[key] = ""  # auth takes no conversation id there (§22 item 7): none named again
                result = await probe(config)
        except Exception as exc:  # kept (cached) and raised to every request that asks within the cache time
            outcome = exc
        else:
            outcome = result.status
            if result.conversation_id and self._conversations.get(key) != "":
                self._conversations[key] = result.conversation_id
        self._outcomes[key] = (time.monotonic(), outcome)
        return outcome


def _outcome(outcome: str | BaseException) -> str:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


_upstream_probe = UpstreamProbe()


async def check_upstream() -> str:
    if not settings.VIZOCHOK_WS_URL:
        return "embedded sandbox"
    return await _upstream_probe.check()


CHECKS: dict[str, Callable[[], Awaitable[str]]] = {
    # One attempt through the relay's own database path: readiness says at once what a turn would meet.
    "database": functools.partial(db.call, check_database, retries=db.ONCE),
    # A Redis ping is no database work: a worker thread of its own, not the queue on the database thread.
    "redis": sync_to_async(check_redis, thread_sensitive=False),
    "upstream": check_upstream,
}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            outcome = await check()
        except Exception as exc:  # any failure means not ready; the class name is enough to act on
            outcome, ready = f"failed: {type(exc).__name__}", False
        results[name] = {"status": outcome, "ms": round((time.monotonic() - started) * 1000, 1)}
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
