"""``manage.py bench_peak``: the deployment's line at peak hour on one key (docs/benchmarks.md)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    #: The bench starts its own app processes, database and sandbox; this process only drives clients.
    requires_system_checks: list[str] = []
    help = (
        "Peak hour on one key: two Daphne processes on Redis and PostgreSQL, the sandbox enforcing 3 sockets per key "
        "with paced replies, shoppers on several addresses asking for twice the key's capacity plus one flooding "
        "address. Prints the line's numbers against their targets and writes a JSON result file."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--duration", type=float, default=120.0, help="seconds of load (default 120)")
        parser.add_argument("--reply-seconds", type=float, default=3.0, help="seconds every reply takes (default 3)")
        parser.add_argument("--shoppers", type=int, default=18, help="shoppers in a closed loop (default 18)")
        parser.add_argument("--addresses", type=int, default=6, help="client addresses they share (default 6)")
        parser.add_argument("--think", type=float, default=6.0, help="mean seconds between a reply and the next send")
        parser.add_argument("--flood-identities", type=int, default=10, help="identities of the flooding address")
        parser.add_argument(
            "--redis-url", default=settings.REDIS_URL or "redis://127.0.0.1:6379/0", help="Redis for the two processes"
        )
        parser.add_argument(
            "--frame-guards",
            choices=("full", "quick", "off"),
            default="full",
            help="bench_relay's frame phases right after the peak phase, in the same report: full (200 browsers at "
            "20 tokens/s, --guard-repeat times; the default), quick (a few browsers, to check it works), off",
        )
        parser.add_argument("--guard-repeat", type=int, default=3, help="repetitions of the frame phases (default 3)")
        parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: a throwaway database)")
        parser.add_argument(
            "--output",
            default=str(Path(settings.BASE_DIR) / "bench" / "results" / "peak.json"),
            help="JSON result file (default bench/results/peak.json)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from bench.peak_bench import PeakOptions, run

        bench = PeakOptions(
            duration=options["duration"],
            reply_seconds=options["reply_seconds"],
            shoppers=options["shoppers"],
            addresses=options["addresses"],
            think=options["think"],
            flood_identities=options["flood_identities"],
            redis_url=options["redis_url"],
            database_url=options["database_url"],
            output=Path(options["output"]),
            frame_guards=options["frame_guards"],
            guard_repeat=options["guard_repeat"],
            log=lambda line: self.stdout.write(line),
        )
        results = run(bench)
        self.stdout.write(json.dumps(results["summary"], indent=2))
        if "frame_guards" in results:
            self.stdout.write(json.dumps(results["frame_guards"]["guards"], indent=2))
        for target, met in results["targets"].items():
            self.stdout.write(f"{'met ' if met else 'MISSED'}  {target}")
        self.stdout.write(f"results written to {bench.output}")
