"""One default per setting: vizochok_site/settings.py defines each one, and every reader uses ``settings.X``."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

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
