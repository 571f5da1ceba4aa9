"""What the relay stores: conversations, their messages and the cart the upstream last reported.

The upstream offers no history API (reference §22.16), so this database is the only record of a conversation;
it is written once per upstream event, never per token.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

#: Conversation.search_text keeps at most this many characters: appends beyond it are dropped
#: (see chat.persistence.store).
SEARCH_TEXT_LIMIT = 100_000


class Conversation(models.Model):
    class Status(models.TextChoices):
        IDLE = "idle", _("idle")
        BUSY = "busy", _("answering")
        FAILED = "failed", _("failed")
        CLOSED = "closed", _("closed")

    #: The id browsers and URLs see; the integer key never leaves the server, so ids cannot be walked.
    public_id = models.UUIDField(
        pgettext_lazy("admin", "conversation id"), default=uuid.uuid4, unique=True, editable=False
    )
    #: VIZOCHOK's conversation_id, reused across reconnects to stay within 20 new conversations a day.
    upstream_id = models.CharField(
        pgettext_lazy("admin", "assistant's conversation id"), max_length=100, blank=True, db_index=True
    )
    store_id = models.CharField(pgettext_lazy("admin", "store"), max_length=100)
    user_id = models.CharField(pgettext_lazy("admin", "shopper id"), max_length=200)
    session_key = models.CharField(pgettext_lazy("admin", "session key"), max_length=64, blank=True, db_index=True)
    #: The shopper's first words (set when the first turn is claimed): what the admin list shows as the name.
    title = models.CharField(pgettext_lazy("admin", "first message"), max_length=200, blank=True)
    status = models.CharField(
        pgettext_lazy("admin", "status"), max_length=10, choices=Status.choices, default=Status.IDLE
    )
    #: When the running turn began; a busy flag older than the turn limit is stale (its process died).
    busy_since = models.DateTimeField(pgettext_lazy("admin", "answering since"), null=True, blank=True)
    #: Which process runs the turn (``chat.turns.liveness.owner_token``): only the owner may beat or end it.
    busy_owner = models.CharField(pgettext_lazy("admin", "turn owner"), max_length=100, blank=True)
    #: Refreshed every few seconds by the owning process; a lapsed heartbeat means the owner died mid-turn.
    heartbeat_at = models.DateTimeField(pgettext_lazy("admin", "last heartbeat"), null=True, blank=True)
    turn_count = models.PositiveIntegerField(pgettext_lazy("admin", "turns"), default=0)
    #: Last sequence number handed to a message; a page catches up from the last one it saw.
    last_seq = models.PositiveIntegerField(pgettext_lazy("admin", "message count"), default=0)
    cart = models.JSONField(pgettext_lazy("admin", "cart"), default=list, blank=True)
    #: Lines in the cart (``formatting.cart_lines``): 2 kg of potatoes and 3 bottles of milk are 2.
    cart_count = models.PositiveIntegerField(pgettext_lazy("admin", "lines in cart"), default=0)
    cart_total = models.DecimalField(
        pgettext_lazy("admin", "cart total"), max_digits=12, decimal_places=2, default=Decimal(0)
    )
    last_error = models.CharField(pgettext_lazy("admin", "last error"), max_length=64, blank=True)
    created_at = models.DateTimeField(pgettext_lazy("admin", "started"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(pgettext_lazy("admin", "last activity"), default=timezone.now)
    #: The texts of the conversation (shopper's and assistant's) case-folded with Python's ``str.casefold``, so the
    #: admin's search is case-insensitive for Cyrillic on SQLite too (its LIKE folds ASCII only). Appended by
    #: ``chat.persistence.store`` in the statement that stores each text; at most ``SEARCH_TEXT_LIMIT`` characters.
    search_text = models.TextField(pgettext_lazy("admin", "search text"), blank=True, default="", editable=False)

    class Meta:
        verbose_name = pgettext_lazy("admin", "conversation")
        verbose_name_plural = pgettext_lazy("admin", "conversations")
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["user_id", "-updated_at"], name="conv_user_recent"),
            models.Index(fields=["session_key", "-updated_at"], name="conv_session_recent"),
            models.Index(fields=["store_id", "-created_at"], name="conv_store_created"),
            models.Index(fields=["-updated_at"], name="conv_updated"),
            models.Index(fields=["status"], name="conv_status"),
        ]

    def __str__(self) -> str:
        return self.title or str(self.public_id)

    @property
    def group_name(self) -> str:
        """Channel-layer group every tab showing this conversation joins."""
        return f"chat.{self.public_id.hex}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("shopper")
        ASSISTANT = "assistant", _("assistant")
        SYSTEM = "system", _("system")

    class Kind(models.TextChoices):
        TEXT = "text", _("text")
        ACTION = "action", _("action")
        PRODUCT_CARDS = "product_cards", _("product cards")
        QUICK_REPLIES = "quick_replies", _("quick replies")
        CHECKLIST = "checklist", _("ingredient checklist")
        CART = "cart", _("cart change")
        ERROR = "error", _("error")
        NOTICE = "notice", _("notice")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=pgettext_lazy("admin", "conversation"),
    )
    seq = models.PositiveIntegerField(pgettext_lazy("admin", "number"))
    role = models.CharField(pgettext_lazy("admin", "role"), max_length=10, choices=Role.choices)
    kind = models.CharField(pgettext_lazy("admin", "kind"), max_length=20, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(pgettext_lazy("admin", "text"), blank=True)
    payload = models.JSONField(pgettext_lazy("admin", "data"), default=dict, blank=True)
    #: False for an assistant reply cut off mid-stream (upstream dropped, timeout, shutdown).
    complete = models.BooleanField(pgettext_lazy("admin", "complete"), default=True)
    #: The browser's idempotency key for a send, so a resent queue never starts a second turn.
    client_key = models.CharField(pgettext_lazy("admin", "send key"), max_length=64, blank=True)
    created_at = models.DateTimeField(pgettext_lazy("admin", "time"), default=timezone.now)

    class Meta:
        verbose_name = pgettext_lazy("admin", "message")
        verbose_name_plural = pgettext_lazy("admin", "messages")
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="msg_unique_seq"),
            models.UniqueConstraint(
                fields=["conversation", "client_key"],
                condition=~models.Q(client_key=""),
                name="msg_unique_client_key",
            ),
        ]
        indexes = [models.Index(fields=["kind"], name="msg_kind")]

    def __str__(self) -> str:
        return f"{self.get_role_display()} #{self.seq}: {self.text[:60]}"

    @property
    def data(self) -> dict[str, Any]:
        return self.payload if isinstance(self.payload, dict) else {}


class Turn(models.Model):
    """One turn as it ended: what the insights read, so they aggregate rows instead of message payloads.

    Written once by the turn engine when the turn is over (one INSERT off the critical path); the running turn's
    state lives on the conversation (``status``, ``busy_owner``, ``heartbeat_at``).
    """

    class Outcome(models.TextChoices):
        ANSWERED = "answered", pgettext_lazy("admin", "answered")
        FAILED = "failed", pgettext_lazy("admin", "failed")
        STOPPED = "stopped", pgettext_lazy("admin", "stopped")
        INTERRUPTED = "interrupted", pgettext_lazy("admin", "interrupted")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="turns",
        verbose_name=pgettext_lazy("admin", "conversation"),
    )
    #: The ``seq`` of the shopper's message that started the turn.
    seq = models.PositiveIntegerField(pgettext_lazy("admin", "message number"))
    store_id = models.CharField(pgettext_lazy("admin", "store"), max_length=100)
    #: The conversation's shopper, copied when the turn is recorded: "shoppers" counts them without a join.
    user_id = models.CharField(pgettext_lazy("admin", "shopper id"), max_length=200, blank=True, default="")
    started_at = models.DateTimeField(pgettext_lazy("admin", "started"), db_index=True)
    #: ``started_at``'s date in the site's time zone, written with the row: the insights group by it per day
    #: through an index, where truncating a timestamp would call a Python function per row on SQLite.
    day = models.DateField(pgettext_lazy("admin", "day"), null=True, blank=True)
    #: Milliseconds from the send to the first streamed token; null when no text came.
    first_token_ms = models.PositiveIntegerField(
        pgettext_lazy("admin", "time to first token, ms"), null=True, blank=True
    )
    duration_ms = models.PositiveIntegerField(pgettext_lazy("admin", "duration, ms"), null=True, blank=True)
    outcome = models.CharField(
        pgettext_lazy("admin", "outcome"), max_length=12, choices=Outcome.choices, default=Outcome.ANSWERED
    )
    #: The relay's or the upstream's error code that ended the turn ("" when it was answered).
    error_code = models.CharField(pgettext_lazy("admin", "error code"), max_length=64, blank=True)
    #: The shopper's words for a text message ("" for an action), kept for "queries without products".
    query = models.CharField(pgettext_lazy("admin", "shopper's query"), max_length=200, blank=True)
    had_cards = models.BooleanField(pgettext_lazy("admin", "showed products"), default=False)
    #: An ingredient checklist was shown, or the cart changed (any change, also asked for in words): with
    #: ``had_cards`` what tells an answer from a miss in "queries without products".
    had_checklist = models.BooleanField(pgettext_lazy("admin", "showed a checklist"), default=False)
    cart_changed = models.BooleanField(pgettext_lazy("admin", "changed the cart"), default=False)
    #: Adds in this turn (``cart_changed`` with ``action == "item_selected"``) and the cart total after it.
    cart_adds = models.PositiveIntegerField(pgettext_lazy("admin", "adds to cart"), default=0)
    cart_total = models.DecimalField(
        pgettext_lazy("admin", "cart total"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    #: What those adds were, ``[{"sku", "name", "quantity"}, ...]``, for "top products added"; written in the
    #: turn's one INSERT instead of a second table.
    added = models.JSONField(pgettext_lazy("admin", "products added"), default=list, blank=True)

    class Meta:
        verbose_name = pgettext_lazy("admin", "conversation turn")
        verbose_name_plural = pgettext_lazy("admin", "conversation turns")
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["conversation", "seq"], name="turn_unique_seq")]
        indexes = [
            models.Index(fields=["store_id", "started_at"], name="turn_store_started"),
            # The admin insights (chat.admin.insights) read a range of days, of every store or one. Each index holds
            # every column its query reads, so the database never visits the rows (on SQLite that is most of the
            # cost: a month of a busy store is ~100k turns scattered over the table); three are partial, holding
            # only the turns that query wants.
            models.Index(
                fields=[
                    "day",
                    "store_id",
                    "conversation",
                    "user_id",
                    "cart_adds",
                    "cart_total",
                    "first_token_ms",
                    "duration_ms",
                ],
                name="turn_day_totals",
            ),
            models.Index(fields=["day", "store_id", "error_code"], name="turn_day_errors", condition=~Q(error_code="")),
            models.Index(
                fields=["day", "store_id", "query"],
                name="turn_day_unmatched",
                condition=Q(had_cards=False, had_checklist=False, cart_changed=False, outcome="answered")
                & ~Q(query=""),
            ),
            models.Index(fields=["day", "store_id"], name="turn_day_adds", condition=Q(cart_adds__gt=0)),
            # SQLite's latency percentiles: each metric's values in day and value order, so they arrive sorted.
            models.Index(
                fields=["day", "first_token_ms", "store_id"],
                name="turn_day_first_token",
                condition=Q(first_token_ms__isnull=False),
            ),
            models.Index(
                fields=["day", "duration_ms", "store_id"],
                name="turn_day_duration",
                condition=Q(duration_ms__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.outcome}"


class Feedback(models.Model):
    """A shopper's rating of one finished assistant reply (issue 25): one per reply and shopper, changeable.

    Written by ``chat.feedback.rate``, which also keeps a copy in the reply's payload (``payload["rating"]``) so
    every rendering of the reply (first paint, catch-up, another tab) shows it without a join. ``day`` and
    ``store_id`` are copied with the row, as on ``Turn``, so the insights read ratings per day through an index.
    """

    class Value(models.TextChoices):
        UP = "up", pgettext_lazy("admin", "helpful")
        DOWN = "down", pgettext_lazy("admin", "not helpful")

    class Reason(models.TextChoices):
        WRONG_PRODUCTS = "wrong_products", pgettext_lazy("admin", "wrong products")
        WRONG_PRICE = "wrong_price", pgettext_lazy("admin", "wrong price or amount")
        NOT_UNDERSTOOD = "not_understood", pgettext_lazy("admin", "did not understand")
        OTHER = "other", pgettext_lazy("admin", "other")

    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="feedback",
        verbose_name=pgettext_lazy("admin", "conversation"),
    )
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="feedback", verbose_name=pgettext_lazy("admin", "reply")
    )
    #: The reply's ``seq`` in its conversation (what the browser and the host event name it by).
    seq = models.PositiveIntegerField(pgettext_lazy("admin", "message number"))
    user_id = models.CharField(pgettext_lazy("admin", "shopper id"), max_length=200)
    store_id = models.CharField(pgettext_lazy("admin", "store"), max_length=100)
    value = models.CharField(pgettext_lazy("admin", "rating"), max_length=4, choices=Value.choices)
    reason = models.CharField(pgettext_lazy("admin", "reason"), max_length=20, choices=Reason.choices, blank=True)
    text = models.CharField(pgettext_lazy("admin", "shopper's comment"), max_length=500, blank=True)
    day = models.DateField(pgettext_lazy("admin", "day"))
    rated_at = models.DateTimeField(pgettext_lazy("admin", "rated"), default=timezone.now)

    class Meta:
        verbose_name = pgettext_lazy("admin", "reply rating")
        verbose_name_plural = pgettext_lazy("admin", "reply ratings")
        constraints = [models.UniqueConstraint(fields=["message", "user_id"], name="feedback_one_per_reply")]
        indexes = [
            models.Index(fields=["day", "value", "reason", "store_id"], name="feedback_day"),
            # Per day (GROUP BY day, value in index order) and, below, the latest down ratings of a period (and
            # store): the index is walked backwards from the period's last day, so ten rows are read, not sorted.
            models.Index(fields=["value", "day", "rated_at", "store_id"], name="feedback_latest"),
            # The conversation list's rating filter: one index probe per conversation, no row read.
            models.Index(fields=["conversation", "value"], name="feedback_conversation"),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.value}"


class SpentEntryToken(models.Model):
    """The ``jti`` of every entry token that bound a session, kept until the token expires: each opens one session.

    A table rather than the cache: its unique constraint refuses a replay atomically across every process (the
    local-memory cache is one process's, Redis is optional and evicts under memory pressure), and it survives a
    restart. Rows past ``expires_at`` are deleted as new tokens come in (chat.web.embed).
    """

    jti = models.CharField(max_length=128, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.jti
