"""``manage.py seed_demo_conversations --count N``: fill the database with plausible fake chats.

Meant for checking that the admin stays fast with a realistic volume (e.g. ``--count 100000``) and for demos.
Rows are built in memory one batch at a time and written with ``bulk_create``, so 100k conversations take
seconds, not hours, and memory stays bounded by the batch size. Every seeded user id starts with ``demo-`` so
the data is easy to recognise (and to prune).
"""

from __future__ import annotations

import random
import uuid
from argparse import ArgumentParser
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Message

BATCH_SIZE = 1000
STORES = ("store-kyiv-01", "store-kyiv-02", "store-lviv-01", "store-odesa-01", "sandbox-store")
PRODUCTS = (
    ("milk-001", "Молоко 2,5% 900 г", 42.9, 38.5, "pcs"),
    ("bread-001", "Хліб білий", 28.0, None, "pcs"),
    ("eggs-001", "Яйця С1, 10 шт", 64.5, 59.9, "pcs"),
    ("potato-001", "Картопля", 18.9, None, "kg"),
    ("cheese-001", "Сир твердий", 389.0, 349.0, "kg"),
    ("apple-001", "Яблука Голден", 34.5, None, "kg"),
)
QUESTIONS = (
    "Що приготувати на вечерю?",
    "Потрібне молоко і хліб",
    "Рецепт борщу на 4 порції",
    "Що є зі знижкою?",
    "Додай яйця в кошик",
)


def _product_frame(rng: random.Random) -> dict[str, Any]:
    items = []
    for sku, name, price, promo, unit in rng.sample(PRODUCTS, 3):
        item: dict[str, Any] = {"sku": sku, "name": name, "price": price, "unit": unit}
        item["image_url"] = f"/static/chat/sandbox/products/{sku}.svg"
        if promo is not None:
            item |= {"promo_price": promo, "promo_label": "-10%"}
        items.append(item)
    return {"type": "product_cards", "items": items}


def _cart_frame(rng: random.Random) -> tuple[dict[str, Any], int, Decimal]:
    sku, name, price, promo, unit = rng.choice(PRODUCTS)
    quantity = rng.randint(1, 3)
    unit_price = promo if promo is not None else price
    total = round(Decimal(str(unit_price)) * quantity, 2)
    line = {"sku": sku, "name": name, "price": price, "quantity": quantity, "unit": unit}
    frame = {
        "type": "cart_changed",
        "action": "item_selected",
        "sku": sku,
        "name": name,
        "quantity": quantity,
        "price": price,
        "items": [line],
        "total": float(total),
    }
    return frame, 1, total  # one line


def _messages(rng: random.Random, start: datetime, per_conversation: int) -> tuple[list[Message], dict[str, Any]]:
    """A short scripted chat (question, answer, cards, cart, ...) and the conversation fields it implies."""
    question = rng.choice(QUESTIONS)
    answer = f"Ось що я знайшов для запиту **{question.rstrip('?')}**:\n\n- перший варіант\n- другий варіант"
    cart_frame, cart_count, cart_total = _cart_frame(rng)
    with_cart = rng.random() < 0.5
    script: list[tuple[str, str, str, dict[str, Any]]] = [
        ("user", "text", question, {}),
        ("assistant", "text", answer, {}),
        ("assistant", "product_cards", "", _product_frame(rng)),
        ("assistant", "quick_replies", "", {"type": "quick_replies", "replies": [{"label": "Так", "value": "yes"}]}),
        ("user", "text", "Так, додай", {}),
        ("assistant", "cart" if with_cart else "text", "" if with_cart else "Гаразд!", cart_frame if with_cart else {}),
    ]
    script = (script * (per_conversation // len(script) + 1))[:per_conversation]
    messages = [
        Message(
            seq=seq,
            role=role,
            kind=kind,
            text=text or (payload.get("type", "") if kind != "text" else ""),
            payload=payload,
            created_at=start + timedelta(seconds=20 * seq),
        )
        for seq, (role, kind, text, payload) in enumerate(script, start=1)
    ]
    has_cart = any(message.kind == Message.Kind.CART for message in messages)
    fields = {
        "title": question,
        "turn_count": sum(1 for message in messages if message.role == "user"),
        "last_seq": len(messages),
        "cart": cart_frame["items"] if has_cart else [],
        "cart_count": cart_count if has_cart else 0,
        "cart_total": cart_total if has_cart else Decimal(0),
        "updated_at": start + timedelta(seconds=20 * max(len(messages), 1)),
    }
    return messages, fields


class Command(BaseCommand):
    help = "Create N demo conversations with messages (bulk inserts in batches), e.g. to check the admin at 100k."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="conversations to create")
        parser.add_argument("--messages", type=int, default=6, help="messages per conversation (default 6)")
        parser.add_argument("--days", type=int, default=180, help="spread start times over this many days")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"rows per insert ({BATCH_SIZE})")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable data set")

    def handle(self, *args: Any, **options: Any) -> None:
        count, per, days, batch = options["count"], options["messages"], options["days"], options["batch_size"]
        if count < 1 or per < 0 or days < 1 or batch < 1:
            raise CommandError("--count, --days and --batch-size must be positive, --messages non-negative")
        rng = random.Random(options["seed"])
        now = timezone.now()
        created = 0
        while created < count:
            size = min(batch, count - created)
            self._insert_batch(rng, now, size, per, days)
            created += size
            if options["verbosity"] > 1:
                self.stdout.write(f"{created}/{count}")
        self.stdout.write(self.style.SUCCESS(f"Created {created} demo conversations with {per} messages each."))

    @staticmethod
    def _insert_batch(rng: random.Random, now: datetime, size: int, per: int, days: int) -> None:
        conversations: list[Conversation] = []
        scripts: list[list[Message]] = []
        for _ in range(size):
            start = now - timedelta(seconds=rng.randint(60 * 10, days * 86400))
            messages, fields = _messages(rng, start, per)
            conversations.append(
                Conversation(
                    public_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    upstream_id=f"demo-up-{rng.getrandbits(48):012x}",
                    store_id=rng.choice(STORES),
                    user_id=f"demo-user-{rng.randint(1, max(size, 5000)):05d}",
                    status=rng.choices(("idle", "closed", "failed"), weights=(80, 15, 5))[0],
                    created_at=start,
                    **fields,
                )
            )
            scripts.append(messages)
        with transaction.atomic():
            Conversation.objects.bulk_create(conversations, batch_size=size)
            if any(conversation.pk is None for conversation in conversations):  # a backend without RETURNING
                ids = dict(
                    Conversation.objects.filter(public_id__in=[c.public_id for c in conversations]).values_list(
                        "public_id", "pk"
                    )
                )
                for conversation in conversations:
                    conversation.pk = ids[conversation.public_id]
            for conversation, messages in zip(conversations, scripts, strict=True):
                for message in messages:
                    message.conversation_id = conversation.pk
            Message.objects.bulk_create([m for messages in scripts for m in messages], batch_size=size)
