"""The protocol layer and the sandbox stand alone: importing them never imports Django (nor does the websockets
patch in ``chat.compat`` that the protocol layer uses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_protocol_layer_and_sandbox_import_nothing_from_django() -> None:
    probe = (
        "import sys\n"
        "import chat.vizochok.messages, chat.vizochok.actions, chat.vizochok.client, chat.vizochok.backoff\n"
        "import chat.vizochok.errors, chat.sandbox.server, chat.sandbox.assistant, chat.sandbox.catalog\n"
        "import chat.compat, chat.compat.fences, chat.compat.websockets_frames\n"
        "leaked = sorted(name for name in sys.modules if name == 'django' or name.startswith('django.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
