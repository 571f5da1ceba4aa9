"""Turn ownership across processes: who runs a conversation's turn, and how the others notice when it died.

``store.begin_turn`` flags a conversation busy in the database, so a second process cannot start a parallel turn.
If the owning process is killed mid-turn nothing clears that flag; waiting for the whole turn limit (minutes) would
lock the shopper out. So the owner refreshes ``Conversation.heartbeat_at`` every few seconds while its turn runs,
and everybody else treats the flag as stale once the heartbeat lapses (three missed beats). A tab that reconnects to
a surviving process while the flag is still fresh watches it (``watch_orphan``) and, when it lapses, the interrupted
turn is closed with a stored notice, so the shopper sees why the reply stopped and can continue. What the dead
process had already stored stays; only the reply it was streaming (not yet stored) is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings

logger = logging.getLogger("chat.turns.liveness")

#: This process, distinct from every other process (and from an earlier process with the same pid).
PROCESS_ID = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

#: Missed beats after which the owner is considered dead.
MISSED_BEATS = 3


def heartbeat_interval() -> float:
    return max(0.05, settings.VIZOCHOK_HEARTBEAT_SECONDS)


def heartbeat_lapse() -> float:
    """Seconds without a beat after which a busy flag is stale."""
    return heartbeat_interval() * MISSED_BEATS


def owner_token(seq: int) -> str:
    """The owner of the turn started by the user message ``seq`` in this process."""
    return f"{PROCESS_ID}#{seq}"[:100]


async def beat(pk: int, owner: str) -> None:
    """Refresh the heartbeat until cancelled; stops by itself when the turn is no longer ours.

    A failing database does not stop the beat: the next one may succeed, and if the outage outlasts the lapse
    another process may take the conversation over, which ``store.heartbeat`` then reports as lost ownership.
    """
    from chat import store

    interval = heartbeat_interval()
    while True:
        await asyncio.sleep(interval)
        try:
            mine = await database_sync_to_async(store.heartbeat)(pk, owner)
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


async def watch_orphan(pk: int, publish: Callable[[str], Awaitable[None]]) -> None:
    """Wait while another process's turn holds ``pk``; if its owner dies, close the turn and tell every tab.

    Polls the database once per heartbeat interval: there is no cross-process event for "a process died".
    Returns when the turn ends normally (its owner publishes that) or after the orphan was reaped.
    """
    from chat import store
    from chat.presentation import rendering

    interval = heartbeat_interval()
    while True:
        await asyncio.sleep(interval)
        try:
            state = await database_sync_to_async(store.turn_state)(pk)
            if state == "live":
                continue
            if state == "stale":
                notice = await database_sync_to_async(store.reap_stale)(pk)
                if notice is not None:
                    logger.warning("conversation %s: owner of the running turn died; turn closed", pk)
                    html = rendering.stored(notice) + rendering.status(None) + rendering.state("ready")
                    await publish(html)
                    return
            await publish(rendering.state("ready"))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("watching conversation %s failed: %s", pk, type(exc).__name__)
