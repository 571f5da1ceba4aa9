"""The page's own JavaScript units (static/chat/lifecycle.js and friends) under Node's built-in test runner.

The scripts are ES modules with no build step; their pure parts are tested by ``node --test`` on the ``*.test.mjs``
files beside this one, and this test runs that so CI does. Node 20 or newer (its runner and mock timers).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")


def node_major() -> int:
    assert NODE is not None
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout
    return int(version.strip().lstrip("v").split(".")[0])


@pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs); the JS units need Node 20+")
def test_the_javascript_units_pass_under_node() -> None:
    assert NODE is not None
    if node_major() < 20:
        pytest.skip("the JS units need Node 20+ (node:test with mock timers)")
    files = sorted(str(path) for path in [*HERE.glob("*.test.mjs"), *HERE.glob("*.test.js")])
    assert files, "no JavaScript tests found"
    result = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", *files], capture_output=True, text=True, timeout=120, cwd=HERE
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
