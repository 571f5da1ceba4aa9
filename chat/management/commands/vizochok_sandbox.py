"""``manage.py vizochok_sandbox``: run the offline sandbox upstream alone, e.g. to point a second app at it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.sandbox.server import SandboxConfig, run_sandbox


class Command(BaseCommand):
    #: The sandbox uses nothing of the project (no DB, no templates), so project checks must not block it.
    requires_system_checks: list[str] = []
    help = "Run the offline VIZOCHOK sandbox upstream (a WebSocket server at /api/v1/ws/chat) until interrupted."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)")
        parser.add_argument("--pace", type=float, default=40.0, help="text_delta frames per second; 0 = unpaced")
        parser.add_argument("--auth-timeout", type=float, default=10.0, help="seconds to wait for the auth frame")
        parser.add_argument(
            "--max-connections", type=int, default=3, help="open sockets per API key (default 3, as the API allows)"
        )
        parser.add_argument(
            "--bench-replies",
            action="store_true",
            help="answer 'bench <tokens> [<pace>]' with a fixed reply of that length (for manage.py bench_relay)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["pace"] < 0 or options["auth_timeout"] <= 0 or options["max_connections"] < 1:
            raise CommandError("--pace must be >= 0, --auth-timeout > 0 and --max-connections >= 1")
        logging.getLogger("chat.sandbox").setLevel(logging.INFO if options["verbosity"] > 1 else logging.WARNING)
        config = SandboxConfig(
            tokens_per_second=options["pace"],
            auth_timeout=options["auth_timeout"],
            max_connections_per_key=options["max_connections"],
            bench_replies=options["bench_replies"],
        )

        def ready(url: str) -> None:
            self.stdout.write(url)
            self.stdout.flush()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_sandbox(options["host"], options["port"], config, on_ready=ready))
