"""``manage.py export_conversations``: conversations with their messages as JSON or CSV, streamed to a file or stdout.

Uses the same generators as the admin's export actions (chat.exports), so both produce identical files. Memory
stays bounded: rows come through ``iterator()`` in chunks and every chunk is written as soon as it is produced.
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat import exports


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since must be YYYY-MM-DD, got {value!r}") from None


class Command(BaseCommand):
    help = "Export conversations and their messages as JSON (one object per conversation) or CSV (one row per message)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--format", choices=exports.FORMATS, default="json", help="json (default) or csv")
        parser.add_argument("--since", help="only conversations started on or after this date (YYYY-MM-DD)")
        parser.add_argument("--store", help="only conversations of this store id")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _date(options["since"]) if options["since"] else None
        conversations = exports.conversations_for_export(since=since, store_id=options["store"])
        chunks = exports.stream_export(conversations, options["format"])
        if options["output"]:
            # newline="" so the csv module's \r\n row endings are written unchanged.
            with open(options["output"], "w", encoding="utf-8", newline="") as target:
                target.writelines(chunks)
            if options["verbosity"] > 0:
                self.stderr.write(f"Wrote {options['output']}")
        else:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
