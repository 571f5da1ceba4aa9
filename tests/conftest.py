"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Rate-limit buckets and socket counters live in the cache: each test starts with none spent."""
    from django.core.cache import cache

    cache.clear()
