"""Turn boundaries hold whatever the upstream does at them (reference §6, open question 11).

A scripted upstream on a real loopback socket answers each ``message`` with the frames a test gives it, including
frames that belong to no turn: a ``response_complete`` after an ``error``, a repeated one, a block after it. The
client must give every turn exactly its own frames and set the rest apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from chat.vizochok.backoff import Backoff
from chat.vizochok.client import UpstreamSession, open_session
from chat.vizochok.messages import ErrorMessage, ResponseComplete, ServerMessage, TextDelta

from .test_client import TIMEOUT, make_config

RC = {"type": "response_complete", "conversation_id": "conv_b"}
END = {"type": "text_end"}


def reply(text: str) -> list[dict[str, Any]]:
    return [{"type": "status", "code": "thinking"}, {"type": "text_delta", "delta": text}, END, RC]


class Scripted:
    """Answers the n-th ``message`` with ``scripts[n]``: a list of frames, or a float to pause that long."""

    def __init__(self, scripts: list[list[Any]]) -> None:
        self.scripts = scripts
        self.url = ""

    async def _handle(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
            await ws.send('{"type":"auth_ok"}')
            await ws.send('{"type":"conversation_started","conversation_id":"conv_b"}')
            for script in self.scripts:
                await ws.recv()
                for step in script:
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        await ws.send(json.dumps(step))
            await ws.wait_closed()

    @contextlib.asynccontextmanager
    async def session(self, **overrides: Any) -> AsyncIterator[UpstreamSession]:
        async with serve(self._handle, "127.0.0.1", 0, ping_interval=None) as server:
            self.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/v1/ws/chat"
            config = make_config(self.url, **overrides)
            session = await open_session(config, backoff=Backoff(max_attempts=0))
            try:
                yield session
            finally:
                await session.close()


async def turn(session: UpstreamSession, text: str) -> list[ServerMessage]:
    async with asyncio.timeout(TIMEOUT):
        return [frame async for frame in session.turn(session.message(text))]


def said(frames: list[ServerMessage]) -> str:
    return "".join(frame.delta for frame in frames if isinstance(frame, TextDelta))


async def test_a_response_complete_after_an_error_stays_with_the_erroring_turn() -> None:
    upstream = Scripted([[{"type": "error", "code": "internal_error"}, 0.2, RC], reply("second"), reply("third")])
    async with upstream.session() as session:
        first = await turn(session, "one")
        second = await turn(session, "two")
        third = await turn(session, "three")
    assert isinstance(first[-1], ErrorMessage)
    assert said(second) == "second" and isinstance(second[-1], ResponseComplete)
    assert said(third) == "third"
    assert session.strays == 0  # the late response_complete was the erroring turn's own end


async def test_an_error_without_response_complete_lets_the_next_turn_through() -> None:
    upstream = Scripted([[{"type": "error", "code": "internal_error"}], reply("second")])
    async with upstream.session(error_grace=0.3) as session:
        await turn(session, "one")
        second = await turn(session, "two")
    assert said(second) == "second"
    assert session.strays == 0


async def test_a_repeated_response_complete_is_set_apart() -> None:
    upstream = Scripted([[*reply("first"), RC], reply("second"), reply("third")])
    async with upstream.session() as session:
        seen: list[tuple[str, str]] = []
        session.on_stray = lambda frame, where: seen.append((frame.type, where))
        assert said(await turn(session, "one")) == "first"
        second = await turn(session, "two")
        third = await turn(session, "three")
    assert said(second) == "second" and said(third) == "third"
    assert seen == [("response_complete", "between turns")]


async def test_a_block_after_response_complete_is_not_the_next_reply() -> None:
    late = [{"type": "text_delta", "delta": "Late "}, {"type": "text_delta", "delta": "words."}, END]
    upstream = Scripted([[*reply("first"), *late], reply("second")])
    async with upstream.session() as session:
        await turn(session, "one")
        second = await turn(session, "two")
    assert said(second) == "second"
    assert session.strays == 3


async def test_a_repeated_response_complete_that_comes_after_the_next_send_is_set_apart() -> None:
    # The duplicate reaches us only after the next message went out: it still cannot end a turn that has not begun.
    upstream = Scripted([reply("first"), [RC, END, *reply("second")]])
    async with upstream.session() as session:
        await turn(session, "one")
        second = await turn(session, "two")
    assert said(second) == "second"
    assert session.strays == 2
