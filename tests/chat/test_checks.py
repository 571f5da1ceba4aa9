"""``manage.py check --deploy`` refuses an upstream URL that would carry the API key in clear (issue 15, item 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, Daphne


def deploy_check(url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-deploy-check-secret-that-is-long-and-random-enough-0123456789abcdef",
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "VIZOCHOK_WS_URL": url,
        **extra,
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_plain_ws_upstream_off_loopback_fails_the_deploy_check() -> None:
    result = deploy_check("ws://api.vizochok.example/api/v1/ws/chat")
    assert result.returncode != 0
    assert "chat.E001" in result.stderr


@pytest.mark.parametrize(
    "url", ["wss://api.vizochok.example/api/v1/ws/chat", "ws://127.0.0.1:8765/ws", "ws://localhost:8765/ws"]
)
def test_tls_or_loopback_passes(url: str) -> None:
    result = deploy_check(url)
    assert "chat.E001" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


# --- issue 24, item 8: the checkout URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "checkout",
    ["javascript:alert(document.cookie)", "http://shop.example/checkout", "//shop.example/checkout", "shop.example"],
)
def test_a_checkout_url_that_is_not_https_fails_the_checks_in_production(checkout: str) -> None:
    result = deploy_check("wss://api.vizochok.example/api/v1/ws/chat", VIZOCHOK_CHECKOUT_URL=checkout)
    assert result.returncode != 0
    assert "chat.E003" in result.stderr and "VIZOCHOK_CHECKOUT_URL" in result.stderr


def test_an_https_checkout_url_passes() -> None:
    result = deploy_check("wss://api.vizochok.example/api/v1/ws/chat", VIZOCHOK_CHECKOUT_URL="https://shop.example/c")
    assert "chat.E003" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


def test_plain_http_checkout_is_for_development_only() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vizochok_site.settings", "DJANGO_DEBUG": "1"}
    for checkout, refused in (("http://127.0.0.1:8000/shop/checkout/", False), ("javascript:alert(1)", True)):
        env["VIZOCHOK_CHECKOUT_URL"] = checkout
        command = [sys.executable, "manage.py", "check", "--fail-level", "ERROR"]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert ("chat.E003" in result.stderr) is refused, result.stderr


# --- issue 24, item 3: an unencrypted upstream is judged on the address it resolves to, and stops the server ------


@pytest.mark.parametrize("url", ["ws://[::ffff:127.0.0.1]:8765/ws", "ws://0x7f.1:8765/ws"])
def test_a_plain_upstream_that_resolves_to_loopback_passes(url: str) -> None:
    result = deploy_check(url)
    assert "chat.E001" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "url", ["ws://[::ffff:192.0.2.10]/ws", "ws://192.0.2.10:8765/ws", "ws://no-such-host.invalid/"]
)
def test_a_plain_upstream_that_resolves_elsewhere_fails(url: str) -> None:
    result = deploy_check(url)
    assert result.returncode != 0
    assert "chat.E001" in result.stderr


def production_daphne(tmp_path: Path, url: str) -> Daphne:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-deploy-check-secret-that-is-long-and-random-enough-0123456789abcdef",
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VIZOCHOK_TRUSTED_PROXY_HOPS": "1",
        "VIZOCHOK_API_KEY": "sk_live_must_never_travel_in_clear",
        "VIZOCHOK_WS_URL": url,
    }
    env.pop("REDIS_URL", None)
    return Daphne("production app", tmp_path / "server.log", env)


@pytest.mark.parametrize("url", ["ws://[::ffff:192.0.2.10]:8765/ws", "ws://no-such-host.invalid/ws"])
def test_production_refuses_to_start_on_an_upstream_in_clear(tmp_path: Path, url: str) -> None:
    app = production_daphne(tmp_path, url)
    with pytest.raises(RuntimeError, match="exited"):
        app.launch()
    assert "VIZOCHOK_WS_URL is not wss://" in app.log()
    assert "sk_live_must_never_travel_in_clear" not in app.log()


def test_production_starts_on_a_plain_upstream_on_loopback(tmp_path: Path) -> None:
    app = production_daphne(tmp_path, "ws://[::ffff:127.0.0.1]:9/ws")
    app.launch()
    try:
        assert app.alive
    finally:
        app.stop()


def test_the_deploy_check_warns_while_no_proxy_hop_is_trusted() -> None:
    """Issue 24, item 2: production sits behind a proxy; with 0 hops the caps and the lockout count the wrong one."""
    url = "wss://api.vizochok.example/api/v1/ws/chat"
    assert "chat.W001" in deploy_check(url, VIZOCHOK_TRUSTED_PROXY_HOPS="0").stderr
    assert "chat.W001" not in deploy_check(url, VIZOCHOK_TRUSTED_PROXY_HOPS="1").stderr
