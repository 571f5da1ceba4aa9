"""``manage.py bench_load``: the chat page's first load on throttled phone networks, against issue 22's targets."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    #: The bench starts its own app processes with their own databases; this process only drives the browser.
    requires_system_checks: list[str] = []
    help = (
        "Load the chat page cold in headless Chromium on 'Slow 4G' and '3G' (Chromium's network throttling), N times "
        "each, with the app as deployed (DEBUG off, collectstatic) and as developed (DEBUG on); print the median and "
        "every time to #chat[data-state=ready], bytes and requests, and whether the targets are met."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("-n", "--loads", type=int, default=5, help="cold loads per network (default 5)")
        parser.add_argument(
            "--configs",
            default="production,development",
            help="comma-separated: production (DEBUG off, collectstatic), development (DEBUG on)",
        )
        parser.add_argument("--check", action="store_true", help="exit with an error when a target is missed")

    def handle(self, *args: Any, **options: Any) -> None:
        from bench.page_load import HEADER, run

        configs = tuple(c.strip() for c in options["configs"].split(",") if c.strip())
        if not configs or not set(configs) <= {"production", "development"}:
            raise CommandError("--configs takes production and/or development")
        if options["loads"] < 1:
            raise CommandError("--loads must be at least 1")
        results = run(options["loads"], configs=configs)
        self.stdout.write(HEADER)
        for result in results:
            self.stdout.write(result.row())
        errors = sorted({error for result in results for load in result.loads for error in load.errors})
        for error in errors:
            self.stderr.write(f"console error: {error}")
        missed = [result for result in results if result.config == "production" and not result.met]
        if missed:
            message = "missed: " + ", ".join(f"{r.network.name} {r.median:.2f} s" for r in missed)
            if options["check"]:
                raise CommandError(message)
            self.stderr.write(message)
