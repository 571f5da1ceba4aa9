"""Operating the app: probes, metrics, production settings, security headers and graceful shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.processes import ROOT, free_port
from tests.production.conftest import (
    REDIS_URL,
    App,
    Database,
    Shopper,
    Upstream,
    app_env,
    redis_or_skip,
)


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.mark.django_db
def test_healthz_answers_while_the_process_runs(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_redis_and_upstream(client: Client, settings: Any) -> None:
    settings.VIZOCHOK_WS_URL = ""
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["upstream"]["status"] == "embedded sandbox"


@pytest.mark.django_db
def test_readyz_fails_when_the_upstream_is_unreachable(client: Client, settings: Any) -> None:
    settings.VIZOCHOK_WS_URL = f"ws://127.0.0.1:{free_port()}/api/v1/ws/chat"  # nothing listens there
    settings.VIZOCHOK_API_KEY = "sk_test_never_in_probes"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["upstream"]["status"].startswith("failed: ")
    assert "127.0.0.1" not in response.content.decode() and "sk_test" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.redis
def test_readyz_checks_redis_when_configured(client: Client, settings: Any) -> None:
    redis_or_skip()
    settings.REDIS_URL = REDIS_URL
    assert client.get("/readyz").json()["checks"]["redis"]["status"] == "ok"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"].startswith("failed: ")


@pytest.mark.django_db
def test_metrics_are_exposed_in_prometheus_format(client: Client) -> None:
    from chat.ops import metrics

    metrics.turn_finished("")
    metrics.turn_finished("upstream_lost")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in (
        "vizochok_turns_total",
        'vizochok_errors_total{code="upstream_lost"}',
        "vizochok_upstream_reconnects_total",
        "vizochok_queue_wait_seconds_bucket",
        "vizochok_active_sockets",
    ):
        assert name in text


@pytest.mark.django_db
def test_the_page_has_a_strict_csp_and_no_inline_script(client: Client) -> None:
    response = client.get("/?lang=en")
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert "frame-ancestors" in directives
    page = response.content.decode()
    assert "includeIndicatorStyles" in page  # htmx must not inject its inline <style>
    for tag in page.split("<script")[1:]:
        assert tag.split(">", 1)[0].count("src=") == 1, "every script is a file"
    assert "<style" not in page and " style=" not in page


def test_check_deploy_is_clean_with_production_settings() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "VIZOCHOK_API_KEY": "sk_live_not_a_real_key",
        "VIZOCHOK_TRUSTED_PROXY_HOPS": "1",  # behind one proxy, as the README's production block says
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert "sk_live_not_a_real_key" not in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


# --- graceful shutdown ---------------------------------------------------------------------------------------


@pytest.fixture
def lone_app(database: Database, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    redis_or_skip()
    env = app_env(database, upstream, VIZOCHOK_IDLE_GRACE="5", VIZOCHOK_HEARTBEAT_SECONDS="1")
    app = App("lone", tmp_path_factory.mktemp("lone"), env).start()
    yield app
    app.stop()


@pytest.mark.postgres
@pytest.mark.redis
async def test_sigterm_marks_the_running_turn_and_closes_upstream(
    lone_app: App, upstream: Upstream, database: Database
) -> None:
    from redis.asyncio import Redis

    shopper = await Shopper.visit(lone_app)
    tab = await shopper.open(lone_app)
    upstream.pause()
    try:
        await tab.send(kind="message", text="milk", key="term-1")
        await tab.until("live-")  # mid-reply: one upstream socket open, one slot leased in Redis
        assert await asyncio.to_thread(lone_app.terminate) == 0
        await upstream.acall(upstream.server.wait_for_connections(0))  # the upstream socket was closed
    finally:
        upstream.resume()
        await tab.close()

    key_hash = hashlib.sha256(lone_app.env["VIZOCHOK_API_KEY"].encode()).hexdigest()[:16]
    redis = Redis.from_url(REDIS_URL)
    try:
        assert await redis.zcard(f"vizochok:upstream-slots:{key_hash}") == 0  # the slot was given back
    finally:
        await redis.aclose()
    rows = database.rows(
        "SELECT m.role, m.kind, m.text, m.complete FROM chat_message m "
        "JOIN chat_conversation c ON c.id = m.conversation_id WHERE c.public_id = %s ORDER BY m.seq",
        shopper.public_id,
    )
    assert rows[0] == ("user", "text", "milk", True)
    assert ("assistant", "error", "relay_shutdown", True) in rows
    partial = [row for row in rows if row[:2] == ("assistant", "text")]
    assert partial and partial[0][3] is False  # what had streamed is kept, marked incomplete
    [(status,)] = database.rows("SELECT status FROM chat_conversation WHERE public_id = %s", shopper.public_id)
    assert status == "idle"  # the next turn can start at once, on any process
    turns = database.rows(
        "SELECT t.outcome, t.error_code FROM chat_turn t "
        "JOIN chat_conversation c ON c.id = t.conversation_id WHERE c.public_id = %s",
        shopper.public_id,
    )
    assert turns == [("interrupted", "relay_shutdown")]  # the insights count it (issue 25)
    assert "shutdown: running turns marked" in lone_app.log()
