"""Turn ownership across processes: how the others notice that the process running a turn died.

``claims.begin_turn`` flags a conversation busy in the database, so a second process cannot start a parallel turn.
If the owning process is killed mid-turn nothing clears that flag; waiting for the whole turn limit (minutes) would
lock the shopper out. So the owner refreshes ``Conversation.heartbeat_at`` every few seconds while its turn runs,
and everybody else treats the flag as stale once the heartbeat lapses (``TurnLimits.lapse``). A tab that reconnects
to a surviving process while the flag is still fresh watches it (``watch_orphan``) and, when it lapses, the
interrupted turn is closed with a stored notice, so the shopper sees why the reply stopped and can continue. What the
dead process had already stored stays; only the reply it was streaming (not yet stored) is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat.models import Message
from chat.ops.limits import limits
from chat.ops.process import owner_token
from chat.persistence import claims, db

logger = logging.getLogger("chat.turns.liveness")


async def beat(pk: int, owner: str) -> None:
    """Refresh the heartbeat until cancelled; stops by itself when the turn is no longer ours.

    A failing database does not stop the beat: the next one may succeed, and if the outage outlasts the lapse
    another process may take the conversation over, which ``claims.heartbeat`` then reports as lost ownership.
    """
    while True:
        await asyncio.sleep(limits().heartbeat)
        try:
            mine = await db.call(claims.heartbeat, pk, owner, retries=db.ONCE)
        except Exception as exc:  # the database may be briefly away; keep trying
            logger.warning("heartbeat of conversation %s failed: %s", pk, type(exc).__name__)
            continue
        if not mine:
            return


def keep_alive(turn: asyncio.Task[None], pk: int, seq: int) -> asyncio.Task[None]:
    """Beat for ``turn`` while it runs (the beat is cancelled when the turn task is done)."""
    beating = asyncio.get_running_loop().create_task(beat(pk, owner_token(seq)))
    turn.add_done_callback(lambda _task: beating.cancel())
    return beating


#: What a watcher tells every tab: the stored notice of a reaped turn (or None when the turn ended normally).
Publish = Callable[[Message | None], Awaitable[None]]


async def watch_orphan(pk: int, publish: Publish) -> None:
    """Wait while another process's turn holds ``pk``; if its owner dies, close the turn and tell every tab.

    Polls the database once per heartbeat interval: there is no cross-process event for "a process died".
    Returns when the turn ends normally (its owner publishes that) or after the orphan was reaped.
    """
    while True:
        await asyncio.sleep(limits().heartbeat)
        try:
            state = await db.call(claims.turn_state, pk, retries=db.ONCE)
            if state == "live":
                continue
            notice = await db.call(claims.reap_stale, pk, retries=db.ONCE) if state == "stale" else None
            if notice is not None:
                logger.warning("conversation %s: owner of the running turn died; turn closed", pk)
            await publish(notice)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("watching conversation %s failed: %s", pk, type(exc).__name__)
