"""The system checks of ``chat/checks.py``: ``manage.py check --deploy`` refuses an upstream URL that would carry the
API key in clear (issue 15, item 12), a checkout URL that is not https (issue 24, item 8) and no trusted proxy hop
(issue 24, item 2); production refuses to start on an upstream in clear (issue 24, item 3).

The checks run in this process through Django's own ``run_checks`` with the settings overridden, which is what the
command runs; one ``manage.py check --deploy`` in a subprocess shows the environment reaching all three, and
``tests/production/test_documented_setup.py`` runs it on the README's production settings, which pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import ERROR, WARNING, run_checks
from django.test import override_settings

from chat.checks import refuse_to_serve
from tests.processes import ROOT, Daphne

TLS = "wss://api.vizochok.example/api/v1/ws/chat"


def production_env(**extra: str) -> dict[str, str]:
    """This environment as a production process's (no Redis), with ``extra``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-deploy-check-secret-that-is-long-and-random-enough-0123456789abcdef",
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        **extra,
    }
    env.pop("REDIS_URL", None)
    return env


def check_ids(deploy: bool = True, **overrides: Any) -> dict[str, int]:
    """The ``chat.*`` messages that ``check`` (``--deploy`` by default) gives with these settings, by id: level."""
    production = {"DEBUG": False, "VIZOCHOK_WS_URL": TLS, "VIZOCHOK_CHECKOUT_URL": "", "VIZOCHOK_TRUSTED_PROXY_HOPS": 1}
    with override_settings(**{**production, **overrides}):
        found = run_checks(include_deployment_checks=deploy)
    return {message.id: message.level for message in found if message.id and message.id.startswith("chat.")}


def test_the_environment_reaches_the_checks_and_an_error_fails_the_command() -> None:
    env = production_env(
        VIZOCHOK_WS_URL="ws://api.vizochok.example/api/v1/ws/chat",
        VIZOCHOK_CHECKOUT_URL="http://shop.example/checkout",
        VIZOCHOK_TRUSTED_PROXY_HOPS="0",
    )
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    for found in ("chat.E001", "chat.E003", "VIZOCHOK_CHECKOUT_URL", "chat.W001"):
        assert found in result.stderr, result.stderr


def test_a_plain_ws_upstream_off_loopback_fails_the_deploy_check() -> None:
    assert check_ids(VIZOCHOK_WS_URL="ws://api.vizochok.example/api/v1/ws/chat") == {"chat.E001": ERROR}


@pytest.mark.parametrize("url", [TLS, "ws://127.0.0.1:8765/ws", "ws://localhost:8765/ws", ""])
def test_tls_loopback_or_the_sandbox_passes(url: str) -> None:
    assert check_ids(VIZOCHOK_WS_URL=url) == {}


@pytest.mark.parametrize("url", ["ws://[::ffff:127.0.0.1]:8765/ws", "ws://0x7f.1:8765/ws"])
def test_a_plain_upstream_that_resolves_to_loopback_passes(url: str) -> None:
    assert check_ids(VIZOCHOK_WS_URL=url) == {}


@pytest.mark.parametrize(
    "url", ["ws://[::ffff:192.0.2.10]/ws", "ws://192.0.2.10:8765/ws", "ws://no-such-host.invalid/"]
)
def test_a_plain_upstream_that_resolves_elsewhere_fails(url: str) -> None:
    assert check_ids(VIZOCHOK_WS_URL=url) == {"chat.E001": ERROR}


def test_a_plain_upstream_is_allowed_in_development() -> None:
    assert check_ids(DEBUG=True, VIZOCHOK_WS_URL="ws://api.vizochok.example/api/v1/ws/chat") == {}


# --- issue 24, item 8: the checkout URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "checkout",
    ["javascript:alert(document.cookie)", "http://shop.example/checkout", "//shop.example/checkout", "shop.example"],
)
def test_a_checkout_url_that_is_not_https_fails_the_checks_in_production(checkout: str) -> None:
    assert check_ids(VIZOCHOK_CHECKOUT_URL=checkout) == {"chat.E003": ERROR}


def test_an_https_checkout_url_passes() -> None:
    assert check_ids(VIZOCHOK_CHECKOUT_URL="https://shop.example/c") == {}


@pytest.mark.parametrize(
    ("checkout", "refused"), [("http://127.0.0.1:8000/shop/checkout/", False), ("javascript:alert(1)", True)]
)
def test_plain_http_checkout_is_for_development_only(checkout: str, refused: bool) -> None:
    """Not a deploy check: ``manage.py check`` (and runserver) tell it in development too."""
    found = check_ids(deploy=False, DEBUG=True, VIZOCHOK_CHECKOUT_URL=checkout)
    assert found == ({"chat.E003": ERROR} if refused else {})


# --- issue 24, item 3: an unencrypted upstream is judged on the address it resolves to, and stops the server ------


@pytest.mark.parametrize("url", ["ws://[::ffff:192.0.2.10]:8765/ws", "ws://no-such-host.invalid/ws"])
def test_production_names_an_upstream_in_clear_as_a_reason_to_refuse(url: str) -> None:
    with override_settings(DEBUG=False, VIZOCHOK_WS_URL=url):
        assert [reason for reason in refuse_to_serve() if "VIZOCHOK_WS_URL is not wss://" in reason]
    with override_settings(DEBUG=False, VIZOCHOK_WS_URL=TLS):
        assert not [reason for reason in refuse_to_serve() if "VIZOCHOK_WS_URL" in reason]


def production_daphne(tmp_path: Path, url: str) -> Daphne:
    env = production_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        VIZOCHOK_TRUSTED_PROXY_HOPS="1",
        VIZOCHOK_API_KEY="sk_live_must_never_travel_in_clear",
        VIZOCHOK_WS_URL=url,
    )
    return Daphne("production app", tmp_path / "server.log", env)


def test_production_refuses_to_start_on_an_upstream_in_clear(tmp_path: Path) -> None:
    app = production_daphne(tmp_path, "ws://no-such-host.invalid/ws")
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
    assert check_ids(VIZOCHOK_TRUSTED_PROXY_HOPS=0) == {"chat.W001": WARNING}
    assert check_ids(VIZOCHOK_TRUSTED_PROXY_HOPS=1) == {}


def test_a_public_key_is_warned_of() -> None:
    """Reference §14: with a ``pk_`` key the API cannot trust the ``user_id`` the relay sends, so its per-user
    limits collapse onto the key: every shopper of the store shares one 20 conversations and 200 messages a day."""
    assert check_ids(deploy=False, VIZOCHOK_API_KEY="pk_live_abc123") == {"chat.W002": WARNING}
    assert check_ids(deploy=False, VIZOCHOK_API_KEY="sk_live_abc123") == {}
