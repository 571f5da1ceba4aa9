"""What one turn did, gathered while it runs and stored once as a ``Turn`` row when it ends (issue 17).

The admin insights aggregate these rows instead of message payloads. Gathering is a few attribute writes per
upstream event; the only database work is ``chat.persistence.store.record_turn``'s single INSERT at the end of the turn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from chat.models import Turn
from chat.vizochok import messages as wire

#: Codes after which the shopper's turn was cut short by the relay's side, not answered with an error.
INTERRUPTING = frozenset({"relay_shutdown", "turn_interrupted", "upstream_lost"})
#: The relay's code for a turn the shopper stopped (not an error: nothing went wrong).
STOPPED = "stopped"


def outcome(code: str) -> str:
    if not code:
        return Turn.Outcome.ANSWERED
    if code == STOPPED:
        return Turn.Outcome.STOPPED
    return Turn.Outcome.INTERRUPTED if code in INTERRUPTING else Turn.Outcome.FAILED


def _ms(since: float, until: float | None) -> int | None:
    return None if until is None else max(0, round((until - since) * 1000))


@dataclass(slots=True)
class TurnRecord:
    """Started with the turn; ``see`` every upstream event; ``fields`` gives ``store.record_turn``'s arguments."""

    query: str = ""
    started_at: datetime = field(default_factory=timezone.now)
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    had_cards: bool = False
    had_checklist: bool = False
    cart_changed: bool = False
    cart_adds: int = 0
    cart_total: Decimal | None = None
    added: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def begin(cls, frame: wire.UserMessage | wire.Action) -> TurnRecord:
        return cls(query=frame.text if isinstance(frame, wire.UserMessage) else "")

    def see(self, event: Any) -> None:
        match event:
            case wire.TextDelta() if self.first_token is None:
                self.first_token = time.monotonic()
            case wire.ProductCards():
                self.had_cards = True
            case wire.IngredientChecklist():
                self.had_checklist = True
            case wire.CartChanged():
                self.cart_changed = True
                self.cart_total = event.total
                if event.action == "item_selected":
                    self.cart_adds += 1
                    quantity = "" if event.quantity is None else str(event.quantity)
                    self.added.append({"sku": event.sku or "", "name": event.name or "", "quantity": quantity})

    def fields(self, seq: int, code: str) -> dict[str, Any]:
        return {
            "seq": seq,
            "started_at": self.started_at,
            "first_token_ms": _ms(self.started, self.first_token),
            "duration_ms": _ms(self.started, time.monotonic()),
            "outcome": outcome(code),
            "error_code": "" if code == STOPPED else code,
            "query": self.query,
            "had_cards": self.had_cards,
            "had_checklist": self.had_checklist,
            "cart_changed": self.cart_changed,
            "cart_adds": self.cart_adds,
            "cart_total": self.cart_total,
            "added": self.added,
        }
