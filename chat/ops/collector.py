"""CPython's cyclic garbage collector in a serving process.

Every thread waits while the collector runs (it holds the GIL), so a collection is a pause of every frame in flight.
A full (generation 2) collection walks every tracked object, and in a server most of those are its start-up's:
Django, Channels, Daphne and Twisted, the app's modules and settings, alive until the process ends. ``bench_relay``
measured the full collections in the relay's Daphne process at 97–154 ms with them and 34–59 ms with them frozen
(moved out of the collector's reach, ``gc.freeze``), one or two a phase at 200 conversations; a repetition's
relay-added p99 per frame follows its full collection (docs/benchmarks.md). What the first requests build (URL
resolvers, compiled templates) comes after the freeze and is still walked.
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
