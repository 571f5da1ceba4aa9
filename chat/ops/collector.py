"""CPython's cyclic garbage collector in a serving process.

Every thread waits while the collector runs (it holds the GIL), so a collection is a pause of every frame in flight.
A full (generation 2) collection walks every tracked object, and most of those in a server are its start-up's:
Django, Channels, Daphne and Twisted, the app's modules, templates and URL patterns, all alive until the process
ends. ``bench_relay`` measured the full collections in the relay's Daphne process at 105–129 ms with them and
38–48 ms with them frozen (moved out of the collector's reach, ``gc.freeze``), one or two per phase at 200
conversations: one such pause alone held a phase's relay-added p99 per frame at 22 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect what start-up left unreachable, then keep everything still alive out of later collections.

    Frozen objects are never collected, so this runs once, after start-up: what is alive then (modules, settings,
    the app's router) lives as long as the process anyway. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
