"""``manage.py check --deploy`` refuses an upstream URL that would carry the API key in clear (issue 15, item 12)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.processes import ROOT


def deploy_check(url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-deploy-check-secret-that-is-long-and-random-enough-0123456789abcdef",
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "VIZOCHOK_WS_URL": url,
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
