"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Rate-limit buckets and socket counters live in the cache: each test starts with none spent."""
    from django.core.cache import cache

    cache.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive Chromium run last.

    Playwright's sync API keeps its event loop marked as running in the main thread for as long as the
    session-scoped ``browser`` fixture lives; any asyncio test after it fails with "Runner.run() cannot be called
    from a running event loop". A stable sort keeps every other order as collected.
    """
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))
