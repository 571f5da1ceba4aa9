"""What the relay stores: conversations, their messages and the cart the upstream last reported.

The upstream offers no history API (reference §22.16), so this database is the only record of a conversation;
it is written once per upstream event, never per token.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    class Status(models.TextChoices):
        IDLE = "idle", _("idle")
        BUSY = "busy", _("answering")
        FAILED = "failed", _("failed")
        CLOSED = "closed", _("closed")

    #: The id browsers and URLs see; the integer key never leaves the server, so ids cannot be walked.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    #: VIZOCHOK's conversation_id, reused across reconnects to stay within 20 new conversations a day.
    upstream_id = models.CharField(max_length=100, blank=True, db_index=True)
    store_id = models.CharField(max_length=100)
    user_id = models.CharField(max_length=200)
    session_key = models.CharField(max_length=64, blank=True, db_index=True)
    title = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.IDLE)
    #: When the running turn began; a busy flag older than the turn limit is stale (its process died).
    busy_since = models.DateTimeField(null=True, blank=True)
    #: Which process runs the turn (``chat.turns.liveness.owner_token``): only the owner may beat or end it.
    busy_owner = models.CharField(max_length=100, blank=True)
    #: Refreshed every few seconds by the owning process; a lapsed heartbeat means the owner died mid-turn.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    turn_count = models.PositiveIntegerField(default=0)
    #: Last sequence number handed to a message; a page catches up from the last one it saw.
    last_seq = models.PositiveIntegerField(default=0)
    cart = models.JSONField(default=list, blank=True)
    #: Lines in the cart (``formatting.cart_lines``): 2 kg of potatoes and 3 bottles of milk are 2.
    cart_count = models.PositiveIntegerField(default=0)
    cart_total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    last_error = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
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

    def is_busy(self, turn_limit: float) -> bool:
        """Whether a live turn holds the conversation: flagged, younger than the limit and its owner still beating.

        The heartbeat makes a crashed process's turn stale within seconds instead of after the whole turn limit.
        """
        if self.status != self.Status.BUSY or self.busy_since is None:
            return False
        now = timezone.now()
        if self.heartbeat_at is not None:
            from chat.turns.liveness import heartbeat_lapse

            if now - self.heartbeat_at > timedelta(seconds=heartbeat_lapse()):
                return False
        return now - self.busy_since < timedelta(seconds=turn_limit)


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

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT)
    text = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    #: False for an assistant reply cut off mid-stream (upstream dropped, timeout, shutdown).
    complete = models.BooleanField(default=True)
    #: The browser's idempotency key for a send, so a resent queue never starts a second turn.
    client_key = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
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
        ANSWERED = "answered", _("answered")
        FAILED = "failed", _("failed")
        STOPPED = "stopped", _("stopped")
        INTERRUPTED = "interrupted", _("interrupted")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    #: The ``seq`` of the shopper's message that started the turn.
    seq = models.PositiveIntegerField()
    store_id = models.CharField(max_length=100)
    started_at = models.DateTimeField(db_index=True)
    #: Milliseconds from the send to the first streamed token; null when no text came.
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.ANSWERED)
    #: The relay's or the upstream's error code that ended the turn ("" when it was answered).
    error_code = models.CharField(max_length=64, blank=True)
    #: The shopper's words for a text message ("" for an action), kept for "queries without products".
    query = models.CharField(max_length=200, blank=True)
    had_cards = models.BooleanField(default=False)
    #: Adds in this turn (``cart_changed`` with ``action == "item_selected"``) and the cart total after it.
    cart_adds = models.PositiveIntegerField(default=0)
    cart_total = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["conversation", "seq"], name="turn_unique_seq")]
        indexes = [models.Index(fields=["store_id", "started_at"], name="turn_store_started")]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.outcome}"
