"""``/admin/insights/now/``: the "Now" panel of the insights page, polled by htmx every few seconds (issue 25).

Turns streaming now, turns waiting in line for an upstream socket, and upstream sockets in use out of the key's
limit, for the whole deployment: with Redis the slots' shared sets count every process (``RedisSlots.usage``),
without it this process is the deployment. Running turns are read from the database (a busy conversation whose
owner still beats, ``chat.persistence.claims.is_busy``), so they count in every process too; the waiting ones are
among them and are shown apart.

An async view: it runs on the event loop that owns this process's relay (its slots live there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from chat.models import Conversation
from chat.ops.limits import limits
from chat.persistence import db
from chat.turns.service import get_relay

#: Seconds between two refreshes of the panel.
POLL_SECONDS = 5


@dataclass(frozen=True)
class Now:
    streaming: int
    waiting: int
    sockets: int
    limit: int


def running_turns() -> int:
    """Conversations a live turn holds now (the flag set and the owner's heartbeat fresh), in every process."""
    now, limit = timezone.now(), limits()
    return Conversation.objects.filter(
        status=Conversation.Status.BUSY,
        busy_since__gt=now - timedelta(seconds=limit.busy),
        heartbeat_at__gt=now - timedelta(seconds=limit.lapse),
    ).count()


async def measure() -> Now:
    sockets, waiting = await get_relay().slots.usage()
    running = await db.call(running_turns, retries=db.SEND_RETRIES)
    return Now(max(0, running - waiting), waiting, sockets, settings.VIZOCHOK_MAX_CONNECTIONS)


def may_see(request: HttpRequest) -> bool:
    """Staff who may read conversations: the session, the user and the permissions are read in one trip to the
    database thread (``request.auser`` and ``ahas_perm`` would take one each, outside the relay's database path)."""
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm("chat.view_conversation"))


@never_cache
async def now_view(request: HttpRequest) -> HttpResponse:
    if not await db.call(may_see, request, retries=db.SEND_RETRIES):
        # Answered, not raised: anybody may poll this URL, and a raised PermissionDenied logs a traceback each time.
        return HttpResponseForbidden()
    context = {"now": await measure(), "poll_seconds": POLL_SECONDS}
    return TemplateResponse(request, "admin/insights_now.html", context)
