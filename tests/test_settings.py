"""One default per setting: vizochok_site/settings.py defines each one, and every reader uses ``settings.X``."""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tests.processes import ROOT


def _fallback_reads() -> list[str]:
    """``getattr(settings, NAME, default)`` calls: a second default that can disagree with settings.py's."""
    found = []
    for path in sorted((ROOT / "chat").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) == 3
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "settings"
            ):
                found.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_reader_has_its_own_default() -> None:
    assert _fallback_reads() == []


def test_socket_caps_use_the_settings_values() -> None:
    from chat.ops.ratelimit import SocketCaps

    caps = SocketCaps()
    assert (caps.per_session, caps.per_ip) == (
        settings.VIZOCHOK_MAX_SOCKETS_PER_SESSION,
        settings.VIZOCHOK_MAX_SOCKETS_PER_IP,
    )


def test_an_unknown_log_format_is_refused_with_its_name() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vizochok_site.settings", "VIZOCHOK_LOG_FORMAT": "xml"}
    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert "VIZOCHOK_LOG_FORMAT must be 'plain' or 'json', got 'xml'" in run.stderr


def _database_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    """DATABASES["default"] as settings.py builds it from ``env`` (its pool, CONN_MAX_AGE and health checks); the
    file is run on its own, not as this process's settings."""
    with monkeypatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("DATABASE_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        built = runpy.run_path(str(ROOT / "vizochok_site" / "settings.py"))["DATABASES"]["default"]
    return {
        "pool": built.get("OPTIONS", {}).get("pool"),
        "age": built["CONN_MAX_AGE"],
        "checks": built["CONN_HEALTH_CHECKS"],
    }


def test_postgresql_gets_a_checked_pool_unless_switched_off_or_persistent(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://app@db.example/vizochok"
    pooled = _database_settings(monkeypatch, DATABASE_URL=url)
    sized = {"min_size": 2, "max_size": 20, "timeout": 1, "reconnect_timeout": 2}
    assert pooled == {"pool": sized, "age": 0, "checks": True}
    assert _database_settings(monkeypatch, DATABASE_URL=url, DATABASE_POOL_MAX_SIZE="8")["pool"] == {
        **sized,
        "max_size": 8,
    }
    assert _database_settings(monkeypatch, DATABASE_URL=url, DATABASE_POOL="0")["pool"] is None
    # Django pools only connections that close after each use: an explicit persistent age keeps Django's way.
    persistent = _database_settings(monkeypatch, DATABASE_URL=url, DATABASE_CONN_MAX_AGE="60")
    assert persistent == {"pool": None, "age": 60, "checks": False}
    # SQLite: no pool (its connections are kept per database thread, settings.py says why).
    assert _database_settings(monkeypatch)["pool"] is None


def test_a_pool_smaller_than_its_minimum_is_refused_with_both_names() -> None:
    # psycopg_pool would raise ValueError at the first query instead: every page and write failing, never retried.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DATABASE_URL": "postgresql://app@db.example/vizochok",
        "DATABASE_POOL_MAX_SIZE": "1",
    }
    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert "DATABASE_POOL_MIN_SIZE (2) must be 0 or more and at most DATABASE_POOL_MAX_SIZE (1)" in run.stderr


def _settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return runpy.run_path(str(ROOT / "vizochok_site" / "settings.py"))


def test_a_number_of_seconds_left_empty_is_its_default_and_a_bad_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty decimal setting (``VIZOCHOK_TURN_TIMEOUT=`` in an env file) crashed the start with a bare
    ValueError, where an empty whole-number or on/off one falls back to its default."""
    assert _settings_with(monkeypatch, VIZOCHOK_TURN_TIMEOUT="")["VIZOCHOK_TURN_TIMEOUT"] == 120.0
    assert _settings_with(monkeypatch, VIZOCHOK_IDLE_GRACE=" 2.5 ")["VIZOCHOK_IDLE_GRACE"] == 2.5
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(ImproperlyConfigured, match=f"VIZOCHOK_IDLE_GRACE must be a number, got '{bad}'"):
            _settings_with(monkeypatch, VIZOCHOK_IDLE_GRACE=bad)
