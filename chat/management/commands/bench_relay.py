"""``manage.py bench_relay``: the relay against the upstream alone and a bare proxy, in one run (docs/benchmarks.md)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    #: The bench starts its own app process with its own database; this process only drives clients.
    requires_system_checks: list[str] = []
    help = (
        "Benchmark the relay: N simulated browsers through Daphne vs the same load straight to the sandbox and "
        "through a bare websockets proxy. Prints a summary and writes a JSON result file."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("-n", "--browsers", type=int, default=200, help="concurrent conversations (default 200)")
        parser.add_argument("--tokens", type=int, default=40, help="text_delta frames per reply (default 40)")
        parser.add_argument("--pace", type=float, default=20.0, help="sandbox tokens per second (default 20)")
        parser.add_argument("--turns", type=int, default=3, help="turns per conversation, at most 10 (default 3)")
        parser.add_argument("--throughput-browsers", type=int, default=100, help="conversations, unpaced phase")
        parser.add_argument("--throughput-turns", type=int, default=5, help="turns each, unpaced phase (max 10)")
        parser.add_argument("--throughput-tokens", type=int, default=100, help="tokens per reply, unpaced phase")
        parser.add_argument("--coalesce", type=float, default=None, help="VIZOCHOK_COALESCE_SECONDS for the app")
        parser.add_argument(
            "--database-url", default="", help="DATABASE_URL for the app (default: a fresh SQLite file); flushed!"
        )
        parser.add_argument("--modes", default="direct,proxy,relay", help="comma-separated subset of the paths")
        parser.add_argument(
            "--output",
            default=str(Path(settings.BASE_DIR) / "bench" / "results" / "latest.json"),
            help="JSON result file (default bench/results/latest.json)",
        )
        parser.add_argument(
            "--profile", type=Path, default=None, help="folder for py-spy profiles of the server during each phase"
        )
        parser.add_argument(
            "--repeat", type=int, default=3, help="repetitions of every phase; targets use the median (default 3)"
        )
        parser.add_argument("--quick", action="store_true", help="a tiny run (a few browsers) to check it works")

    def handle(self, *args: Any, **options: Any) -> None:
        from bench.relay_bench import BenchOptions, run

        modes = tuple(m.strip() for m in options["modes"].split(",") if m.strip())
        if not set(modes) <= {"direct", "proxy", "relay"} or "direct" not in modes:
            raise CommandError("--modes must include direct (the reference) and only direct, proxy, relay")
        if options["turns"] > 10 or options["throughput_turns"] > 10:
            raise CommandError("at most 10 turns per conversation: the upstream allows 10 messages per minute")
        bench = BenchOptions(
            browsers=options["browsers"],
            tokens=options["tokens"],
            pace=options["pace"],
            turns=options["turns"],
            throughput_browsers=options["throughput_browsers"],
            throughput_turns=options["throughput_turns"],
            throughput_tokens=options["throughput_tokens"],
            coalesce=options["coalesce"],
            database_url=options["database_url"],
            modes=modes,
            output=Path(options["output"]),
            profile=options["profile"],
            repeat=max(1, options["repeat"]),
            log=lambda line: self.stdout.write(line),
        )
        if options["quick"]:
            bench.make_quick()
        results = run(bench)
        self.stdout.write(json.dumps(results["summary"], indent=2))
        self.stdout.write(f"results written to {bench.output}")
