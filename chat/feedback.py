"""Reply feedback (issue 25): a shopper rates a finished reply up or down, with a reason for down.

The browser sends ``{"kind": "rate", "seq": N, "value": "up" | "down" | "none", "reason": ..., "text": ...}`` over
the chat socket (``chat.web.consumer``); :func:`parse` checks it, :func:`rate` stores it on the database thread.
"none" clears the rating (the shopper pressed the same value again). The ``Feedback`` row is the record the
insights and exports read; a copy in the reply's payload lets every rendering of the reply show it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Feedback, Message

#: Longest comment a shopper may add to a down rating.
TEXT_LIMIT = 500
VALUES = frozenset({*Feedback.Value.values, "none"})
REASONS = frozenset(Feedback.Reason.values)


class Invalid(ValueError):
    """A rating frame that cannot be stored: the shopper is told, nothing changes."""


@dataclass(frozen=True, slots=True)
class Rating:
    seq: int
    value: str  # "up", "down" or "none"
    reason: str = ""
    text: str = ""


def parse(data: dict[str, object]) -> Rating:
    """The rating a browser frame asks for; :class:`Invalid` for anything else (types are not trusted either).

    ``seq`` is an int here: the consumer reads it as it reads every number a client sends (``chat.web.numbers``).
    """
    seq, value = data.get("seq"), data.get("value")
    reason, text = data.get("reason", ""), data.get("text", "")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**31:
        raise Invalid("seq")
    if not isinstance(value, str) or value not in VALUES:
        raise Invalid("value")
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or (reason and reason not in REASONS):
        raise Invalid("reason")
    if text is None:
        text = ""
    if not isinstance(text, str) or len(text) > TEXT_LIMIT:
        raise Invalid("text")
    if value != Feedback.Value.DOWN and (reason or text.strip()):
        raise Invalid("reason")  # reasons belong to a down rating only
    return Rating(seq, value, reason, text.strip())


def rate(conversation_id: int, user_id: str, rating: Rating) -> Message | None:
    """Store (or clear) ``user_id``'s rating of the reply ``rating.seq``; the reply as it now shows, or None when
    there is no such finished reply in the conversation."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update()
            .filter(
                conversation_id=conversation_id,
                seq=rating.seq,
                role=Message.Role.ASSISTANT,
                kind=Message.Kind.TEXT,
                complete=True,
            )
            .first()
        )
        if message is None:
            return None
        payload = dict(message.data)
        if rating.value == "none":
            Feedback.objects.filter(message=message, user_id=user_id).delete()
            payload.pop("rating", None)
        else:
            store_id = Conversation.objects.values_list("store_id", flat=True).get(pk=conversation_id)
            now = timezone.now()
            Feedback.objects.update_or_create(
                message=message,
                user_id=user_id,
                defaults={
                    "conversation_id": conversation_id,
                    "seq": message.seq,
                    "store_id": store_id,
                    "value": rating.value,
                    "reason": rating.reason,
                    "text": rating.text,
                    "day": timezone.localdate(now),
                    "rated_at": now,
                },
            )
            payload["rating"] = {"value": rating.value, "reason": rating.reason, "text": rating.text}
        message.payload = payload
        message.save(update_fields=["payload"])
    return message
