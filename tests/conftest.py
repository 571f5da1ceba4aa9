"""Suite-wide fixtures."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from tests.processes import SHARED_DIR, drop_shared_postgres

# Bytecode caches on, here and in every process the suite starts (they inherit this environment), whatever the
# machine sets (our machines set PYTHONDONTWRITEBYTECODE=1). The suite starts about 70 Python processes of the same
# code (4 workers, ~30 Daphne servers, ~35 manage.py commands); without the caches each one compiles the app from
# source (0.35 CPU-seconds a process) and each worker rewrites every test module's asserts again, on a suite that is
# bound by CPU. The caches are the __pycache__ folders that .gitignore already leaves out.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pytest.ini) runs two workers per core: a worker spends much of its time waiting (on a browser,
    an app process, a paced reply, a reconnect schedule) with its core idle, and a second worker fills it (the suite
    took 4:45 on two cores with one worker each). ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still chooses, as in xdist."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return 2 * len(os.sched_getaffinity(0))


def pytest_configure(config: pytest.Config) -> None:
    """The run's shared folder (the migrated SQLite and PostgreSQL templates, tests/processes.py), made by the process
    that starts the xdist workers, which inherit its environment, and removed when that process ends."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    folder = tempfile.mkdtemp(prefix="vizochok-run-")
    os.environ[SHARED_DIR] = folder

    def release() -> None:
        try:
            drop_shared_postgres(Path(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(release)


# A conversation runner's illegal transition raises in tests (chat/turns/states.py), also in the servers the suite
# starts (they inherit this environment).
os.environ["VIZOCHOK_STRICT_STATES"] = "1"


# The start-up freeze (chat/ops/collector.py) is for a serving process. This one imports the app in the middle of a
# test (tests/chat/conftest.py), and a freeze there would keep that test's loop and fixtures for good; the servers
# the suite starts keep the default, as in production.
django_settings.VIZOCHOK_GC_FREEZE = False


@pytest.fixture(autouse=True)
def _strict_states(settings: Any) -> None:
    """The same in this process, whose settings may have been read before this module set the environment."""
    settings.VIZOCHOK_STRICT_STATES = True


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Rate-limit buckets and socket counters live in the cache: each test starts with none spent."""
    from django.core.cache import cache

    cache.clear()


def _drives_chromium(item: pytest.Item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium run last, the files with the most of them first among those.

    Playwright's sync API keeps its event loop marked as running in the main thread for as long as the
    session-scoped ``browser`` fixture lives; any asyncio test after it fails with "Runner.run() cannot be called
    from a running event loop". A stable sort keeps every other order as collected.

    Under pytest-xdist (``--dist loadfile --no-loadscope-reorder``, pytest.ini) whole files go to the workers in
    this order, so each worker also runs its browser files after everything else; that holds only while no file
    mixes the two kinds, which is checked here. The largest browser files go first so that the run does not end
    with one worker alone on a long file.
    """
    kinds: dict[str, set[bool]] = {}
    sizes: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        kinds.setdefault(path, set()).add(_drives_chromium(item))
        sizes[path] = sizes.get(path, 0) + 1
    mixed = sorted(path for path, seen in kinds.items() if len(seen) > 1)
    if mixed:
        raise pytest.UsageError(f"these files mix Chromium tests with others; split them: {', '.join(mixed)}")

    def order(item: pytest.Item) -> tuple[bool, int]:
        browser = _drives_chromium(item)
        return browser, -sizes[item.nodeid.split("::")[0]] if browser else 0

    items.sort(key=order)
