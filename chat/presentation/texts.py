"""Localized wording for the codes the upstream and the relay send.

The upstream never sends user-facing text, only codes (reference §5, §10.2); the client localizes them. Every
code of the reference is here, plus the relay's own.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, npgettext, pgettext_lazy

STATUS_TEXTS: dict[str, Promise] = {
    "thinking": _("Thinking…"),
    "searching": _("Searching the catalog…"),
    "checking_prices": _("Checking prices…"),
    "updating_cart": _("Updating your cart…"),
    "preparing_recipe": _("Preparing the recipe…"),
    "waiting": _("All lines are busy, you are next in the queue…"),
    "reconnecting": _("Reconnecting to the assistant…"),
    "finishing_previous": _("Waiting for the stopped reply to end…"),
    "rate_limited": _("Too many messages at once: sending yours in a moment…"),
}

ERROR_TEXTS: dict[str, Promise] = {
    # Upstream codes (reference §10.2).
    "rate_limit_exceeded": _("Too many messages at once. Please wait a moment and try again."),
    "user_message_limit": _("You have reached today's message limit. Please come back tomorrow."),
    "user_conversation_limit": _("You have started too many conversations today. Please continue an existing one."),
    "tenant_daily_token_limit": _("The assistant is resting for today. Please try again tomorrow."),
    "tenant_monthly_token_limit": _("The assistant is unavailable this month."),
    "agent_busy": _("The assistant is still answering. Please wait for the reply."),
    "session_token_limit": _("This conversation is too long. Please start a new one."),
    "max_rounds_exceeded": _("That request was too complicated. Please try asking more simply."),
    "message_too_large": _("That message is too long."),
    "invalid_json": _("The assistant could not understand that request."),
    "internal_error": _("Something went wrong on the assistant's side. Please try again."),
    "no_catalog_data": _("The store's catalog is not available right now."),
    # The relay's own codes.
    "queue_timeout": _("All lines are busy right now. Please try again in a minute."),
    "line_full": _("Too many shoppers are waiting for the assistant right now."),
    "too_many_queued": _("Your earlier messages are still waiting in line. Please wait for their replies."),
    "auth_failed": _("The assistant is not available: the store's access was refused."),
    "turn_timeout": _("The assistant took too long to answer. Please try again."),
    "upstream_lost": _("The connection to the assistant was lost. Please send your message again."),
    "upstream_unavailable": _("The assistant is not reachable right now. Please try again later."),
    "relay_error": _("Something went wrong. Please try again."),
    "relay_shutdown": _("The server restarted during the reply. Please send your message again."),
    "turn_interrupted": _("The reply was interrupted by a server restart. Please send your message again."),
    "too_many_connections": _("This chat is open in too many tabs. Please close some and reload."),
    "invalid_frame": _("That could not be sent."),
    "frame_too_large": _("That message is too long."),
    "empty_message": _("Please type a message first."),
    "message_too_long": _("That message is too long."),
    "unknown_kind": _("That action is not supported."),
    "unknown_product": _("That product is no longer available here."),
    "invalid_quantity": _("That quantity is not available for this product."),
    "not_in_cart": _("That product is not in your cart."),
    "choice_expired": _("That choice is no longer available."),
    "nothing_selected": _("Please select at least one ingredient."),
    "service_unavailable": _("The chat is briefly unavailable. Please send your message again in a moment."),
    "rate_limited": _("You are sending messages too quickly. Please wait a few seconds."),
    "too_large_to_show": _("Part of the conversation is too large to show here. Please reload the page."),
    "stopped": _("You stopped the reply."),
    "retry_unavailable": _("Only the last message can be sent again, after it failed or was stopped."),
    "invalid_feedback": _("That rating could not be saved. Please reload the page and try again."),
}

CART_ACTION_TEXTS: dict[str, Promise] = {
    "item_selected": _("Added to cart"),
    "item_removed": _("Removed from cart"),
    "quantity_updated": _("Quantity changed"),
    "cart_cleared": _("Cart cleared"),
    "restored": _("Cart restored"),
}


#: Wording the page's scripts show (static/chat/texts.js reads it from #chat-texts): keys are data-* names.
#: ``%(name)s`` placeholders are filled in by the script.
PAGE_TEXTS: dict[str, Promise] = {
    # A quantity the stepper cannot take: what is allowed ("from 1 to 50 pcs"), the minimum without its unit.
    "not-a-number": _("Enter a number from %(minimum)s to %(maximum)s"),
    "out-of-range": _("From %(minimum)s to %(maximum)s"),
    "in-steps": _("From %(minimum)s to %(maximum)s, in steps of %(step)s"),
    "today": _("Today"),
    "yesterday": _("Yesterday"),
    "copied": _("Copied"),
    # The outbox's pending bubble (static/chat/outbox.js).
    "outbox-waiting": _("Not sent yet: goes out when the connection is back"),
    "outbox-sending": _("Sending…"),
    "outbox-discard": _("Discard"),
}

#: Examples offered on an empty conversation, when the deployment names none (VIZOCHOK_STARTERS).
STARTERS: tuple[Promise, ...] = (
    pgettext_lazy("starter", "Milk"),
    pgettext_lazy("starter", "Borscht recipe"),
    pgettext_lazy("starter", "Add two milk"),
)


def starters() -> list[str]:
    """The deployment's examples, else the defaults in the active language."""
    return list(settings.VIZOCHOK_STARTERS) or [str(text) for text in STARTERS]


def page_texts() -> dict[str, str]:
    """PAGE_TEXTS in the active language."""
    return {key: str(text) for key, text in PAGE_TEXTS.items()}


#: The cart notes' verbs for a change of one line ("Added: Milk, 2 pcs"); whole-cart changes use CART_ACTION_TEXTS.
CART_NOTE_VERBS: dict[str, Promise] = {
    "item_selected": pgettext_lazy("cart note", "Added"),
    "item_removed": pgettext_lazy("cart note", "Removed"),
    "quantity_updated": pgettext_lazy("cart note", "Changed"),
}


#: Places in line said as words ("You are third in line"); later places as numbers.
QUEUE_ORDINALS: dict[int, Promise] = {
    1: pgettext_lazy("place in line", "first"),
    2: pgettext_lazy("place in line", "second"),
    3: pgettext_lazy("place in line", "third"),
    4: pgettext_lazy("place in line", "fourth"),
    5: pgettext_lazy("place in line", "fifth"),
    6: pgettext_lazy("place in line", "sixth"),
    7: pgettext_lazy("place in line", "seventh"),
    8: pgettext_lazy("place in line", "eighth"),
    9: pgettext_lazy("place in line", "ninth"),
    10: pgettext_lazy("place in line", "tenth"),
}


def wait_text(seconds: float) -> str:
    """An estimate as a shopper reads it: whole 5 s steps up to a minute and a half, then minutes."""
    if seconds < 90:
        return _("~%(seconds)s s") % {"seconds": max(5, 5 * math.ceil(seconds / 5))}
    return _("~%(minutes)s min") % {"minutes": math.ceil(seconds / 60)}


def queue_text(place: int, seconds: float) -> str:
    """A waiting turn's status: "You are third in line · ~10 s"."""
    ordinal = QUEUE_ORDINALS.get(place)
    if ordinal is not None:
        head = _("You are %(ordinal)s in line") % {"ordinal": ordinal}
    else:
        head = _("You are number %(place)s in line") % {"place": place}
    return f"{head} · {wait_text(seconds)}"


def retry_text(seconds: float) -> str:
    """When a refused turn may be sent again."""
    return _("Please try again in %(wait)s.") % {"wait": wait_text(seconds).lstrip("~")}


def status_text(code: str) -> str:
    if not code:
        return ""
    return str(STATUS_TEXTS.get(code, _("Working…")))


def error_text(code: str) -> str:
    return str(ERROR_TEXTS.get(code, _("Something went wrong. Please try again.")))


def refusal_text(code: str, details: dict[str, Any]) -> str:
    """A refused send's text; a refused quantity says what is allowed ("from 1 to 50 pcs")."""
    if code == "invalid_quantity" and details.get("maximum"):
        if details.get("step"):
            return _("Not available: from %(minimum)s to %(maximum)s, in steps of %(step)s") % details
        return _("Not available: from %(minimum)s to %(maximum)s") % details
    return error_text(code)


def cart_action_text(action: str) -> str:
    return str(CART_ACTION_TEXTS.get(action, _("Cart updated")))


def cart_note_verb(action: str) -> str:
    """The short verb of a one-line change, or the whole-cart wording."""
    verb = CART_NOTE_VERBS.get(action)
    return str(verb) if verb is not None else cart_action_text(action)


def cart_run_text(note: dict[str, Any]) -> str:
    """A turn's cart changes as one phrase ("Added 10 items"), counting distinct products; "" when there was one
    change (its note names the product instead). Changes of more than one kind are counted together."""
    counts: dict[str, int] = {}
    for action in ("item_selected", "item_removed", "quantity_updated"):
        count = note.get(action)
        if isinstance(count, int) and count > 0:
            counts[action] = count
    total = sum(counts.values())
    if total < 2 and "replaces" not in note:
        return ""
    if list(counts) == ["item_selected"]:
        return npgettext("cart note", "Added %(count)d item", "Added %(count)d items", total) % {"count": total}
    if list(counts) == ["item_removed"]:
        return npgettext("cart note", "Removed %(count)d item", "Removed %(count)d items", total) % {"count": total}
    if list(counts) == ["quantity_updated"]:
        return npgettext("cart note", "Changed %(count)d item", "Changed %(count)d items", total) % {"count": total}
    return ngettext("%(count)d item in the cart changed", "%(count)d items in the cart changed", total) % {
        "count": total
    }
