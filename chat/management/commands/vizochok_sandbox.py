"""``manage.py vizochok_sandbox``: run the offline sandbox upstream alone, e.g. to point a second app at it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.sandbox.server import add_arguments, config_from_options, run_sandbox


class Command(BaseCommand):
    #: The sandbox uses nothing of the project (no DB, no templates), so project checks must not block it.
    requires_system_checks: list[str] = []
    help = "Run the offline VIZOCHOK sandbox upstream (a WebSocket server at /api/v1/ws/chat) until interrupted."

    def add_arguments(self, parser: ArgumentParser) -> None:
        # The same flags as ``python -m chat.sandbox.server``, defined once beside the server.
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = config_from_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        logging.getLogger("chat.sandbox").setLevel(logging.INFO if options["verbosity"] > 1 else logging.WARNING)

        def ready(url: str) -> None:
            self.stdout.write(url)
            self.stdout.flush()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_sandbox(options["host"], options["port"], config, on_ready=ready))
