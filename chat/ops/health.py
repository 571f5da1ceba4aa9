"""Liveness and readiness for load balancers and orchestrators.

``/healthz`` answers as long as the process serves HTTP (restart it if not). ``/readyz`` also checks what a turn
needs: the database, Redis (when configured) and a TCP connection to the upstream. Readiness does not open a
VIZOCHOK WebSocket: the API key allows three sockets in all, and a probe every few seconds must not take one.
The answers name the checks and their outcome only, never a URL, host or key.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

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


def check_upstream() -> str:
    if not settings.VIZOCHOK_WS_URL:
        return "embedded sandbox"
    parts = urlsplit(settings.VIZOCHOK_WS_URL)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    with socket.create_connection((parts.hostname or "", port), timeout=PROBE_TIMEOUT):
        pass
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": check_database, "redis": check_redis, "upstream": check_upstream}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    ready = True
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            outcome = check()
        except Exception as exc:  # any failure means not ready; the class name is enough to act on
            outcome, ready = f"failed: {type(exc).__name__}", False
        results[name] = {"status": outcome, "ms": round((time.monotonic() - started) * 1000, 1)}
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
