"""Prometheus metrics of this process, served at ``/metrics``.

Each ASGI process has its own registry (prometheus-client's default): scrape every process (each listens on its
own port or socket behind the proxy) and sum in Prometheus. Label values are bounded sets (error codes, outcomes),
never conversation or shopper ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

TURNS = Counter("vizochok_turns_total", "Turns finished, by outcome (ok or error).", ["outcome"])
ERRORS = Counter("vizochok_errors_total", "Turns that ended in an error, by upstream or relay error code.", ["code"])
REFUSED = Counter("vizochok_refused_frames_total", "Browser frames refused before reaching upstream.", ["code"])
UPSTREAM_RECONNECTS = Counter("vizochok_upstream_reconnects_total", "Upstream connection retries.")
QUEUE_WAIT = Histogram(
    "vizochok_queue_wait_seconds",
    "Seconds a turn waited for an upstream slot.",
    buckets=(0.005, 0.05, 0.25, 1, 2.5, 5, 10, 20, 30, 60),
)
ACTIVE_SOCKETS = Gauge("vizochok_active_sockets", "Open browser WebSockets in this process.")
STRAY_FRAMES = Counter(
    "vizochok_stray_upstream_frames_total",
    "Upstream frames set apart: between turns, after an error, or repeated within a turn.",
    ["where"],
)
REAPED_TURNS = Counter("vizochok_reaped_turns_total", "Turns closed because their owning process died.")


def turn_finished(code: str) -> None:
    TURNS.labels(outcome="error" if code else "ok").inc()
    if code:
        ERRORS.labels(code=code[:64]).inc()


def counting_retries(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an upstream ``on_retry`` callback so every retry is counted."""

    def on_retry(*args: Any) -> Any:
        UPSTREAM_RECONNECTS.inc()
        return callback(*args)

    return on_retry


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The text exposition format; keep it off the public internet (the proxy should only let scrapers in)."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
