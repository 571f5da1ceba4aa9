"""``manage.py prune_conversations --older-than DAYS [--apply]``: the retention policy for stored chats.

A conversation whose last activity (``updated_at``) is older than DAYS is deleted together with its messages.
It is a dry run unless ``--apply`` is given, because a deletion cannot be undone and the upstream keeps no
copy. Deletion goes in batches of primary keys, so neither memory nor a single transaction grows with the
number of conversations (and SQLite's variable limit is never hit).
"""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chat.models import Conversation

BATCH_SIZE = 500


def stale_conversations(days: int) -> QuerySet[Conversation]:
    """Conversations with no activity for ``days`` days (uses the ``-updated_at`` index)."""
    return Conversation.objects.filter(updated_at__lt=timezone.now() - timedelta(days=days))


def delete_in_batches(queryset: QuerySet[Conversation], batch_size: int = BATCH_SIZE) -> int:
    """Delete ``queryset`` batch by batch, each in its own transaction; returns the conversations deleted."""
    deleted = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            _, per_model = Conversation.objects.filter(pk__in=ids).delete()
        deleted += per_model.get(Conversation._meta.label, 0)


class Command(BaseCommand):
    help = "Delete conversations whose last activity is older than --older-than days (dry run unless --apply)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS", help="age in days (>= 1)")
        parser.add_argument("--apply", action="store_true", help="really delete (default: only count)")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"rows per batch (default {BATCH_SIZE})")

    def handle(self, *args: Any, **options: Any) -> None:
        days, batch_size = options["older_than"], options["batch_size"]
        if days < 1:
            raise CommandError("--older-than must be at least 1 day")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive")
        stale = stale_conversations(days)
        if not options["apply"]:
            count = stale.count()
            self.stdout.write(
                f"Dry run: {count} conversation(s) inactive for more than {days} day(s) would be deleted. "
                "Re-run with --apply to delete them."
            )
            return
        deleted = delete_in_batches(stale, batch_size)
        message = f"Deleted {deleted} conversation(s) inactive for more than {days} day(s)."
        self.stdout.write(self.style.SUCCESS(message))
