"""Daphne with database statement counters, for ``manage.py bench_relay``.

Django's execute wrappers live inside the server process, out of the benchmark's reach, so this launcher installs
one on every new database connection before starting Daphne's own command line, and writes the totals as JSON to
``$BENCH_COUNTERS_FILE`` whenever it gets SIGUSR1. The app itself is unchanged: nothing here runs in production.

Usage: ``python -m bench.daphne_counted -b 127.0.0.1 -p PORT vizochok_site.asgi:application``.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_counts: Counter[str] = Counter()
#: Statements by their first words, so a dump shows which ones dominate.
_shapes: Counter[str] = Counter()
_lock = threading.Lock()
#: CPython's cyclic collections in this process: every thread waits for one (it holds the GIL), so each is a pause
#: of every frame in flight. The longest is since the last dump.
_gc: Counter[str] = Counter()
_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    took = round((time.perf_counter() - _gc_started[0]) * 1_000_000)
    _gc["collections"] += 1
    _gc[f"generation_{info['generation']}"] += 1
    _gc["us_total"] += took
    _gc["us_longest"] = max(_gc["us_longest"], took)


def _kind(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    if verb in {"INSERT", "UPDATE", "DELETE", "REPLACE"}:
        return "writes"
    if verb == "SELECT":
        return "reads"
    return "other"  # BEGIN, SAVEPOINT, RELEASE, PRAGMA...


def _counting(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    with _lock:
        _counts["queries"] += 1
        _counts[_kind(sql)] += 1
        _shapes[" ".join(sql.split()[:6])[:80]] += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # A thread's DatabaseWrapper outlives its connections (CONN_MAX_AGE=0 reconnects per event): install once.
    if _counting not in connection.execute_wrappers:
        connection.execute_wrappers.append(_counting)


def _dump(signum: int, frame: Any) -> None:
    with _lock:
        data: dict[str, Any] = dict(_counts)
        data["top"] = dict(_shapes.most_common(12))
        data["gc"] = dict(_gc)
        _gc["us_longest"] = 0
    path = os.environ["BENCH_COUNTERS_FILE"]
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vizochok_site.settings")
    import django

    django.setup()
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection)
    signal.signal(signal.SIGUSR1, _dump)
    gc.callbacks.append(_on_gc)
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(sys.argv[1:])


if __name__ == "__main__":
    main()
