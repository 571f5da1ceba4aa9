"""Fixtures for the relay: a real sandbox on loopback, the real ASGI application and a shopper's session."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from websockets.asyncio.server import ServerConnection, serve

from chat.models import Conversation, Message
from chat.sandbox.server import SandboxConfig, SandboxServer
from chat.turns.service import get_relay
from chat.web import identity

TIMEOUT = 5.0


class _IllegalTransitions(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "illegal_transition", False):
            self.seen.append(record.getMessage())


@pytest.fixture(autouse=True)
def illegal_transitions() -> Iterator[list[str]]:
    """A runner's illegal transition fails the test, also one raised where nobody awaits it (a timer's callback, a
    background task): the runner logs each (``chat.turns.states``). A test that makes one on purpose empties the list.
    """
    handler = _IllegalTransitions()
    logger = logging.getLogger("chat.turns.runner")
    logger.addHandler(handler)
    try:
        yield handler.seen
    finally:
        logger.removeHandler(handler)
    assert handler.seen == [], "illegal runner transitions:\n" + "\n".join(handler.seen)


def answering_with(frames: list[str]) -> Callable[[ServerConnection], Coroutine[Any, Any, None]]:
    """A hostile (or broken) upstream's connection handler: every ``message`` or ``action`` is answered with
    ``frames`` as written (end them with ``response_complete`` for a turn that ends)."""

    async def answer(ws: ServerConnection) -> None:
        await ws.recv()  # auth
        await ws.send('{"type":"auth_ok"}')
        await ws.send('{"type":"conversation_started","conversation_id":"conv_scripted"}')
        async for raw in ws:
            if json.loads(raw).get("type") in ("message", "action"):
                for frame in frames:
                    await ws.send(frame)

    return answer


@asynccontextmanager
async def scripted_upstream(settings: Any, frames: list[str]) -> AsyncIterator[None]:
    """:func:`answering_with` on loopback as the relay's upstream, for the test's event loop."""
    async with serve(answering_with(frames), "127.0.0.1", 0, max_size=None) as server:
        settings.VIZOCHOK_WS_URL = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
        try:
            yield
        finally:
            await get_relay().close()


@pytest.fixture
async def sandbox(settings: Any) -> AsyncIterator[SandboxServer]:
    """The sandbox at full speed, as the relay's upstream; the relay of this test's loop is closed afterwards."""
    async with SandboxServer(SandboxConfig(tokens_per_second=0.0, ping_interval=0.0)) as server:
        settings.VIZOCHOK_WS_URL = server.url
        settings.VIZOCHOK_IDLE_GRACE = 5.0
        yield server
        await get_relay().close()


@database_sync_to_async
def make_shopper(user_id: str = "anon-test") -> tuple[str, Conversation]:
    session = SessionStore()
    session[identity.SESSION_USER_KEY] = user_id
    session.create()
    conversation = Conversation.objects.create(session_key=session.session_key or "", user_id=user_id, store_id="s")
    return session.session_key or "", conversation


@database_sync_to_async
def stored(conversation: Conversation) -> list[Message]:
    """The conversation's messages as the database has them, in order."""
    return list(Message.objects.filter(conversation=conversation).order_by("seq"))


@database_sync_to_async
def reload(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def communicator(session_key: str, conversation: Conversation, *, origin: bytes = b"http://testserver") -> Any:
    from vizochok_site.asgi import application

    return WebsocketCommunicator(
        application,
        f"/ws/chat/?c={conversation.public_id}&lang=en",
        headers=[(b"origin", origin), (b"host", b"testserver"), (b"cookie", f"sessionid={session_key}".encode())],
    )


@asynccontextmanager
async def connected(session_key: str, conversation: Conversation) -> AsyncIterator[Any]:
    tab = communicator(session_key, conversation)
    accepted, code = await tab.connect(timeout=TIMEOUT)
    assert accepted, code
    try:
        yield tab
    finally:
        await tab.disconnect()


@pytest.fixture
def tab() -> Callable[[str, Conversation], AbstractAsyncContextManager[Any]]:
    return connected


async def send(tab: Any, **fields: Any) -> None:
    await tab.send_to(text_data=json.dumps(fields))


async def receive_until(tab: Any, needle: str, timeout: float = TIMEOUT) -> str:
    """Browser frames joined, up to the first that contains ``needle``."""
    frames: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await tab.receive_from(timeout=timeout)
            frames.append(frame)
            if needle in frame:
                return "".join(frames)


READY = 'data-state="ready"'
