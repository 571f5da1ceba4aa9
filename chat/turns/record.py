"""What a turn did, gathered while it runs and written once when it ends (``models.Turn``, read by the insights)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from chat.models import Turn

#: Relay codes of turns cut off by something other than the upstream's answer.
_INTERRUPTIONS = {"relay_shutdown", "upstream_lost", "turn_interrupted"}
STOPPED = "stopped"


@dataclass(slots=True)
class TurnRecord:
    conversation_id: int
    seq: int
    store_id: str
    #: The shopper's words for a text message ("" for an action).
    query: str = ""
    started_at: datetime = field(default_factory=timezone.now)
    _started: float = field(default_factory=time.monotonic)
    first_token_ms: int | None = None
    had_cards: bool = False
    cart_adds: int = 0
    cart_total: Decimal | None = None

    def first_token(self) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = round((time.monotonic() - self._started) * 1000)

    def cart_changed(self, event: Any) -> None:
        if getattr(event, "action", "") == "item_selected":
            self.cart_adds += 1
        total = getattr(event, "total", None)
        if total is not None:
            self.cart_total = Decimal(str(total))

    def finish(self, code: str) -> Turn:
        """The row to store, for a turn that ended with ``code`` ("" when answered)."""
        if not code:
            outcome = Turn.Outcome.ANSWERED
        elif code == STOPPED:
            outcome = Turn.Outcome.STOPPED
        elif code in _INTERRUPTIONS:
            outcome = Turn.Outcome.INTERRUPTED
        else:
            outcome = Turn.Outcome.FAILED
        return Turn(
            conversation_id=self.conversation_id,
            seq=self.seq,
            store_id=self.store_id,
            started_at=self.started_at,
            first_token_ms=self.first_token_ms,
            duration_ms=round((time.monotonic() - self._started) * 1000),
            outcome=outcome,
            error_code="" if outcome == Turn.Outcome.STOPPED else code[:64],
            query=self.query[:200],
            had_cards=self.had_cards,
            cart_adds=self.cart_adds,
            cart_total=self.cart_total,
        )
