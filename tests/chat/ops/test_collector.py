"""The start-up freeze: what a serving process made at start-up is kept out of the collector's full walks."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

import pytest

from chat.ops.collector import freeze_start_up
from tests.processes import ROOT


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_garbage_is_collected_before_the_rest_is_frozen() -> None:
    """Frozen objects are never collected: start-up's unreachable cycles must be gone first, not kept for good."""
    cycle = _Node()
    gone = weakref.ref(cycle)
    del cycle
    alive = _Node()
    try:
        frozen = freeze_start_up()
        assert gone() is None
        assert frozen == gc.get_freeze_count() > 0
        # What was alive is frozen: no generation holds it, so no collection walks it.
        assert not any(alive is o for o in gc.get_objects())
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("1", True), ("0", False)])
def test_the_served_application_freezes_its_start_up_unless_switched_off(setting: str | None, frozen: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIZOCHOK_GC_FREEZE"}
    env["DJANGO_SETTINGS_MODULE"] = "vizochok_site.settings"
    if setting is not None:
        env["VIZOCHOK_GC_FREEZE"] = setting
    probe = "import gc, vizochok_site.asgi; print(gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    count = int(out.stdout.split()[-1])
    assert (count > 10_000) if frozen else (count == 0)


def test_the_suites_own_process_imports_the_app_without_freezing() -> None:
    # tests/conftest.py: a freeze here would keep whatever test happened to be running for good.
    import vizochok_site.asgi  # noqa: F401

    assert gc.get_freeze_count() == 0
