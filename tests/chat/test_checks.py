"""``manage.py check --deploy`` refuses an upstream URL that would carry the API key in clear (issue 15, item 12)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.processes import ROOT


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
