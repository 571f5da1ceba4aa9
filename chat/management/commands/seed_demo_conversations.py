"""``manage.py seed_demo_conversations --conversations N [--messages M]``: fill the database with plausible chats.

Meant for checking that the admin and its insights stay fast at a realistic volume (``--conversations 100000
--messages 1000000``) and for demos. Each conversation is a run of turns (a search that shows products, a search
that finds nothing, an add to the cart, a recipe, now and then an error) with its messages, its ``Turn`` rows (as
``chat.persistence.store.record_turn`` writes them) and its search column (as ``chat.persistence.store`` keeps it).

Rows are built one batch of conversations at a time: conversations with ``bulk_create`` (their keys come back),
messages and turns with one ``executemany`` each, so 1,000,000 messages take about a minute rather than hours and
memory stays bounded by the batch. Every seeded user id starts with ``demo-`` so the data is easy to recognise.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from argparse import ArgumentParser
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from chat.models import SEARCH_TEXT_LIMIT, Conversation, Feedback, Message, Turn

BATCH_SIZE = 1000
STORES = ("store-kyiv-01", "store-kyiv-02", "store-lviv-01", "store-odesa-01", "sandbox-store")
PRODUCTS = (
    ("milk-001", "Молоко 2,5% 900 г", "42.90", "38.50", "pcs"),
    ("bread-001", "Хліб білий", "28.00", None, "pcs"),
    ("eggs-001", "Яйця С1, 10 шт", "64.50", "59.90", "pcs"),
    ("potato-001", "Картопля", "18.90", None, "kg"),
    ("cheese-001", "Сир твердий", "389.00", "349.00", "kg"),
    ("apple-001", "Яблука Голден", "34.50", None, "kg"),
    ("buckwheat-001", "Гречка 1 кг", "52.00", None, "pcs"),
    ("beet-001", "Буряк", "14.90", None, "kg"),
)
QUESTIONS = (
    "Що приготувати на вечерю?",
    "Потрібне молоко і хліб",
    "Молоко без лактози",
    "Що є зі знижкою?",
    "МОЛОКО 2,5%",
    "яйця і сир",
    "Яблука для пирога",
)
#: Queries the demo catalog has nothing for: the insights' "queries without products".
MISSING = ("кокосове молоко", "Соус песто", "безглютеновий хліб", "тофу", "Кокосове молоко", "мигдальне молоко")
RECIPES = ("Рецепт борщу на 4 порції", "Як зварити гречку?", "рецепт сирників")
#: (code, weight) of the errors a turn may end with: upstream codes and the relay's own.
ERRORS = (
    ("rate_limit_exceeded", 30),
    ("upstream_lost", 25),
    ("turn_timeout", 15),
    ("internal_error", 15),
    ("queue_timeout", 10),
    ("agent_busy", 5),
)
INTERRUPTING = {"upstream_lost"}
ERROR_SHARE = 0.05

Kind = Message.Kind


@dataclass
class Chat:
    """One seeded conversation's rows, before it has a primary key."""

    start: datetime
    store: str
    user: str
    messages: list[tuple[int, str, str, str, dict[str, Any], bool, datetime]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    cart: list[dict[str, Any]] = field(default_factory=list)
    total: Decimal = Decimal(0)
    texts: list[str] = field(default_factory=list)

    def add(self, role: str, kind: str, text: str, payload: dict[str, Any], at: datetime, complete: bool = True) -> int:
        seq = len(self.messages) + 1
        self.messages.append((seq, role, kind, text, payload, complete, at))
        if text and (role == "user" or kind == Kind.TEXT):
            self.texts.append("\n" + text.casefold())
        return seq


def _cards(rng: random.Random, count: int = 3) -> dict[str, Any]:
    items = []
    for sku, name, price, promo, unit in rng.sample(PRODUCTS, count):
        item: dict[str, Any] = {"sku": sku, "name": name, "price": float(price), "unit": unit}
        item["image_url"] = f"/static/chat/sandbox/products/{sku}.svg"
        if promo is not None:
            item |= {"promo_price": float(promo), "promo_label": "-10%"}
        items.append(item)
    return {"type": "product_cards", "items": items}


def _turn(chat: Chat, rng: random.Random, at: datetime, budget: int) -> datetime:
    """Append one turn (at most ``budget`` messages) and its Turn row; returns when the next one may start."""
    roll = rng.random()
    had_cards, adds, added, query = False, 0, [], ""
    if roll < 0.25 and chat.turns:
        sku, name, price, promo, unit = rng.choice(PRODUCTS)
        quantity = rng.randint(1, 3)
        seq = chat.add("user", Kind.ACTION, f"Додати: {name} ×{quantity}", {"type": "action", "sku": sku}, at)
        unit_price = Decimal(promo or price)
        chat.cart.append({"sku": sku, "name": name, "price": float(unit_price), "quantity": quantity, "unit": unit})
        chat.total += unit_price * quantity
        replies: list[tuple[str, str, dict[str, Any]]] = [
            (
                Kind.CART,
                "item_selected",
                {
                    "type": "cart_changed",
                    "action": "item_selected",
                    "sku": sku,
                    "name": name,
                    "quantity": quantity,
                    "items": list(chat.cart),
                    "total": float(chat.total),
                },
            ),
            (Kind.TEXT, f"Додав **{name}** у кошик.", {}),
        ]
        adds, added = 1, [{"sku": sku, "name": name, "quantity": str(quantity)}]
    else:
        if roll < 0.37:
            query = rng.choice(MISSING)
            replies = [(Kind.TEXT, f"На жаль, за запитом «{query}» нічого не знайшлося.", {})]
        elif roll < 0.45:
            query = rng.choice(RECIPES)
            replies = [(Kind.TEXT, f"Ось рецепт: **{query}**\n\n1. Підготуйте продукти\n2. Готуйте", {})]
            replies.append((Kind.PRODUCT_CARDS, "product_cards", _cards(rng, 2)))
            had_cards = True
        else:
            query = rng.choice(QUESTIONS)
            answer = f"Ось що я знайшов для запиту **{query.rstrip('?')}**:\n\n- перший варіант\n- другий варіант"
            replies = [(Kind.TEXT, answer, {}), (Kind.PRODUCT_CARDS, "product_cards", _cards(rng))]
            quick = {"type": "quick_replies", "replies": [{"label": "Дешевше", "value": "дешевше"}]}
            replies.append((Kind.QUICK_REPLIES, "quick_replies", quick))
            had_cards = True
        seq = chat.add("user", Kind.TEXT, query, {}, at)
    code = ""
    if rng.random() < ERROR_SHARE:
        code = rng.choices([c for c, _ in ERRORS], weights=[w for _, w in ERRORS])[0]
        replies = [(Kind.ERROR, code, {"type": "error", "code": code})]
        had_cards, adds, added = False, 0, []
    first_token = None if code else int(rng.lognormvariate(6.6, 0.45))  # ~ 750 ms, a long right tail
    duration = int((first_token or 300) + rng.lognormvariate(7.9, 0.5))  # ~ 2.7 s more
    moment = at
    for kind, text, payload in replies[: max(0, budget - 1)]:
        moment += timedelta(milliseconds=duration / max(1, len(replies)))
        chat.add("assistant", kind, text, payload, moment)
    outcome = (
        Turn.Outcome.ANSWERED if not code else Turn.Outcome.INTERRUPTED if code in INTERRUPTING else Turn.Outcome.FAILED
    )
    chat.turns.append(
        {
            "seq": seq,
            "started_at": at,
            "first_token_ms": first_token,
            "duration_ms": duration,
            "outcome": outcome,
            "error_code": code,
            "query": query,
            "had_cards": had_cards,
            "cart_adds": adds,
            "cart_total": chat.total if adds else None,
            "added": added,
        }
    )
    return at + timedelta(milliseconds=duration, seconds=rng.randint(5, 90))


def build_chat(rng: random.Random, start: datetime, messages: int, user_pool: int) -> Chat:
    chat = Chat(start=start, store=rng.choice(STORES), user=f"demo-user-{rng.randint(1, user_pool):06d}")
    at = start
    while len(chat.messages) < messages:
        at = _turn(chat, rng, at, messages - len(chat.messages))
    return chat


#: (value, reason, comment, weight) of the seeded ratings: most replies that get one are rated helpful.
RATINGS = (
    ("up", "", "", 70),
    ("down", "wrong_products", "", 12),
    ("down", "wrong_price", "", 6),
    ("down", "not_understood", "Я питав про інше", 7),
    ("down", "other", "Занадто довго", 5),
)

Rated = dict[tuple[int, int], tuple[str, str, str, datetime]]


def _rate(chats: list[Chat], rng: random.Random, share: float) -> Rated:
    """Rate ``share`` of the batch's messages (finished replies only): the rating goes into the reply's payload as
    ``chat.feedback`` keeps it; the ``Feedback`` rows follow once the messages have keys. Keyed by (chat, seq)."""
    candidates = [
        (index, position)
        for index, chat in enumerate(chats)
        for position, (_seq, role, kind, _text, _payload, complete, _at) in enumerate(chat.messages)
        if role == "assistant" and kind == Kind.TEXT and complete
    ]
    wanted = min(len(candidates), round(share * sum(len(chat.messages) for chat in chats)))
    chosen: Rated = {}
    for index, position in rng.sample(candidates, wanted) if wanted else []:
        value, reason, text, _ = rng.choices(RATINGS, weights=[r[3] for r in RATINGS])[0]
        seq, role, kind, body, payload, complete, at = chats[index].messages[position]
        payload = {**payload, "rating": {"value": value, "reason": reason, "text": text}}
        chats[index].messages[position] = (seq, role, kind, body, payload, complete, at)
        chosen[(index, seq)] = (value, reason, text, at + timedelta(seconds=rng.randint(5, 600)))
    return chosen


def _insert_ratings(conversations: list[Conversation], chats: list[Chat], ratings: Rated) -> None:
    index_of = {conversation.pk: index for index, conversation in enumerate(conversations)}
    replies = Message.objects.filter(conversation_id__in=list(index_of), role="assistant", kind=Kind.TEXT)
    rows = []
    for pk, conversation_id, seq in replies.values_list("pk", "conversation_id", "seq"):
        index = index_of[conversation_id]
        found = ratings.get((index, seq))
        if found is None:
            continue
        value, reason, text, at = found
        chat = chats[index]
        day = timezone.localdate(at).isoformat()
        time_value = connection.ops.adapt_datetimefield_value(at)
        rows.append((conversation_id, pk, seq, chat.user, chat.store, value, reason, text, day, time_value))
    columns = "conversation_id, message_id, seq, user_id, store_id, value, reason, text, day, rated_at"
    table = connection.ops.quote_name(Feedback._meta.db_table)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 10)})"
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _spread(rng: random.Random, total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` positive counts, skewed like real chats (many short, a few long)."""
    weights = [rng.expovariate(1.0) + 0.3 for _ in range(parts)]
    scale = (total - parts) / sum(weights)
    shares = [1 + int(weight * scale) for weight in weights]
    for index in rng.choices(range(parts), k=total - sum(shares)):
        shares[index] += 1
    return shares


class Command(BaseCommand):
    help = "Create demo conversations with their messages and turns (bulk inserts in batches), e.g. 100k / 1M."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--conversations", "--count", dest="conversations", type=int, required=True)
        parser.add_argument(
            "--messages", type=int, default=None, help="messages in all (default 10 per conversation), spread evenly"
        )
        parser.add_argument("--days", type=int, default=90, help="spread start times over this many days (90)")
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help=f"conversations per batch ({BATCH_SIZE})"
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable data set")
        parser.add_argument(
            "--rated",
            type=float,
            default=0.0,
            help="ratings as a share of all messages (0.1: one rating per ten messages), on finished replies (0)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, days, batch = options["conversations"], options["days"], options["batch_size"]
        messages = options["messages"] if options["messages"] is not None else 10 * count
        if not 0 <= options["rated"] <= 1:
            raise CommandError("--rated is a share between 0 and 1")
        if count < 1 or messages < count or days < 1 or batch < 1:
            raise CommandError("--conversations, --days and --batch-size must be positive, --messages >= conversations")
        rng = random.Random(options["seed"])
        now = timezone.now()
        began = time.monotonic()
        created = stored = turns = rated = 0
        while created < count:
            size = min(batch, count - created)
            # This batch's share of the messages, spread unevenly over its conversations (short chats are common).
            share_total = messages * (created + size) // count - messages * created // count
            shares = _spread(rng, share_total, size)
            chats = [
                build_chat(rng, now - timedelta(seconds=rng.randint(600, days * 86400)), share, max(count // 3, 10))
                for share in shares
            ]
            stored_now, turns_now, rated_now = self._insert(chats, rng, options["rated"])
            created, stored, turns = created + size, stored + stored_now, turns + turns_now
            rated += rated_now
            if options["verbosity"] > 1:
                self.stdout.write(f"{created}/{count} conversations, {time.monotonic() - began:.0f} s")
        # Fresh statistics: the planners would otherwise guess (PostgreSQL's autovacuum analyses a table only a while
        # after a bulk load), and a guessed plan for the admin's queries can be several times slower. PostgreSQL's
        # tables are vacuumed too: until then no page is marked all-visible, so an index-only scan (the insights'
        # covering indexes) still visits every row's page.
        # (VACUUM cannot run inside a transaction: a caller's atomic block gets the statistics alone.)
        vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
        analyze = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        with connection.cursor() as cursor:
            for model in (Conversation, Message, Turn, Feedback):
                cursor.execute(f"{analyze} {connection.ops.quote_name(model._meta.db_table)}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {created} demo conversations, {stored} messages, {turns} turns and {rated} ratings "
                f"in {time.monotonic() - began:.1f} s."
            )
        )

    @staticmethod
    def _insert(chats: list[Chat], rng: random.Random, rated: float = 0.0) -> tuple[int, int, int]:
        ratings = _rate(chats, rng, rated)
        conversations = [
            Conversation(
                public_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                upstream_id=f"demo-up-{rng.getrandbits(48):012x}",
                store_id=chat.store,
                user_id=chat.user,
                title=next((m[3] for m in chat.messages if m[1] == "user"), "")[:200],
                status=rng.choices(("idle", "closed", "failed"), weights=(80, 15, 5))[0],
                turn_count=len(chat.turns),
                last_seq=len(chat.messages),
                cart=chat.cart,
                cart_count=len(chat.cart),
                cart_total=chat.total,
                search_text="".join(chat.texts)[:SEARCH_TEXT_LIMIT],
                created_at=chat.start,
                updated_at=chat.messages[-1][6] if chat.messages else chat.start,
            )
            for chat in chats
        ]
        time_value = connection.ops.adapt_datetimefield_value
        quote = connection.ops.quote_name
        message_sql = (
            f"INSERT INTO {quote(Message._meta.db_table)} "
            "(conversation_id, seq, role, kind, text, payload, complete, client_key, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, '', %s)"
        )
        turn_columns = (
            "conversation_id, seq, store_id, user_id, started_at, day, first_token_ms, duration_ms, outcome, "
            "error_code, query, had_cards, had_checklist, cart_changed, cart_adds, cart_total, added"
        )
        turn_sql = f"INSERT INTO {quote(Turn._meta.db_table)} ({turn_columns}) VALUES ({', '.join(['%s'] * 17)})"
        with transaction.atomic():
            Conversation.objects.bulk_create(conversations, batch_size=len(conversations))
            if any(conversation.pk is None for conversation in conversations):  # a backend without RETURNING
                ids = dict(
                    Conversation.objects.filter(public_id__in=[c.public_id for c in conversations]).values_list(
                        "public_id", "pk"
                    )
                )
                for conversation in conversations:
                    conversation.pk = ids[conversation.public_id]
            message_rows = [
                (conversation.pk, seq, role, kind, text, json.dumps(payload), complete, time_value(at))
                for conversation, chat in zip(conversations, chats, strict=True)
                for seq, role, kind, text, payload, complete, at in chat.messages
            ]
            turn_rows = [
                (
                    conversation.pk,
                    turn["seq"],
                    chat.store,
                    chat.user,
                    time_value(turn["started_at"]),
                    timezone.localdate(turn["started_at"]).isoformat(),
                    turn["first_token_ms"],
                    turn["duration_ms"],
                    turn["outcome"],
                    turn["error_code"],
                    turn["query"],
                    turn["had_cards"],
                    False,
                    turn["cart_adds"] > 0,
                    turn["cart_adds"],
                    None if turn["cart_total"] is None else str(turn["cart_total"]),
                    json.dumps(turn["added"], ensure_ascii=False),
                )
                for conversation, chat in zip(conversations, chats, strict=True)
                for turn in chat.turns
            ]
            with connection.cursor() as cursor:
                cursor.executemany(message_sql, message_rows)
                cursor.executemany(turn_sql, turn_rows)
            if ratings:
                _insert_ratings(conversations, chats, ratings)
        return len(message_rows), len(turn_rows), len(ratings)
