"""The upstream client over real loopback sockets: against the sandbox for the protocol as it should go, and
against tiny hand-written servers for the misbehaviour the sandbox will not produce on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from chat.sandbox.server import SandboxConfig, SandboxServer
from chat.vizochok import actions
from chat.vizochok.backoff import Backoff
from chat.vizochok.client import UpstreamConfig, UpstreamSession, open_session
from chat.vizochok.errors import (
    AuthRejected,
    ConnectionLimited,
    ConversationLimit,
    HandshakeTimeout,
    InvalidUpstreamURL,
    StartRefused,
    TurnTimeout,
    UpstreamClosed,
    UpstreamError,
    UpstreamUnavailable,
    should_retry,
)
from chat.vizochok.messages import (
    MAX_FRAME_BYTES,
    MAX_SERVER_FRAME_BYTES,
    CartChanged,
    ConversationStarted,
    ErrorMessage,
    FrameTooLarge,
    ProductCards,
    ResponseComplete,
    ServerMessage,
    SessionRestored,
    Status,
    TextDelta,
    UnknownMessage,
    UserMessage,
)

TIMEOUT = 3.0
TOKEN = "sk_test_SECRET123"
Handler = Callable[[ServerConnection], Awaitable[None]]


# Helpers --------------------------------------------------------------------------------------------------------


def make_config(url: str, **overrides: Any) -> UpstreamConfig:
    """Short timeouts and no keepalive unless a test asks for it."""
    fields: dict[str, Any] = {
        "token": TOKEN,
        "store_id": "demo",
        "user_id": "u1",
        "auth_timeout": 2.0,
        "turn_timeout": 5.0,
        "ping_interval": None,
        "pong_timeout": 1.0,
        "open_timeout": 2.0,
        "close_timeout": 1.0,
    }
    return UpstreamConfig(url=url, **{**fields, **overrides})


class FakeSleep:
    """Records the backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def no_jitter(max_attempts: int = 30) -> Backoff:
    return Backoff(max_attempts=max_attempts, random=lambda: 0.5)


async def collect(events: AsyncIterator[ServerMessage], into: list[ServerMessage] | None = None) -> list[Any]:
    frames: list[Any] = [] if into is None else into
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            frames.append(event)
    return frames


async def first(events: AsyncIterator[ServerMessage]) -> ServerMessage:
    async with asyncio.timeout(TIMEOUT):
        return await anext(events)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(tokens_per_second=0, ping_interval=0)) as server:
        yield server


@contextlib.asynccontextmanager
async def sandbox_with(**overrides: Any) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(**{"tokens_per_second": 0, "ping_interval": 0, **overrides})) as server:
        yield server


@contextlib.asynccontextmanager
async def session_on(url: str, conversation_id: str | None = None, **overrides: Any) -> AsyncIterator[UpstreamSession]:
    async with asyncio.timeout(TIMEOUT):
        session = await open_session(make_config(url, **overrides), conversation_id, backoff=Backoff(max_attempts=0))
    try:
        yield session
    finally:
        await session.close()


class RawServer:
    """A bare websockets server running ``handler``; records each connection's auth frame."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.auths: list[dict[str, Any]] = []
        self.url = ""

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionClosed):
            await self.handler(ws)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RawServer]:
        async with serve(self._handle, "127.0.0.1", 0, ping_interval=None, max_size=2**20) as server:
            port = server.sockets[0].getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/api/v1/ws/chat"
            yield self


@contextlib.asynccontextmanager
async def raw(handler: Handler) -> AsyncIterator[RawServer]:
    async with RawServer(handler).running() as server:
        yield server


async def accept(ws: ServerConnection, conversation_id: str = "conv_raw") -> dict[str, Any]:
    """Play the server's side of a good handshake; return the auth frame."""
    auth: dict[str, Any] = json.loads(await ws.recv())
    await ws.send('{"type":"auth_ok"}')
    await ws.send(json.dumps({"type": "conversation_started", "conversation_id": conversation_id}))
    return auth


def closing_with(code: int, reason: str = "") -> Handler:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close(code, reason)

    return handler


# Handshake ------------------------------------------------------------------------------------------------------


async def test_handshake_starts_a_conversation(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        assert isinstance(session.start, ConversationStarted)
        assert session.conversation_id == session.start.conversation_id
        assert session.conversation_id.startswith("conv_")
        assert not session.restored
        assert not session.closed
    assert session.closed


async def test_auth_frame_carries_identity_and_resume_id() -> None:
    auths: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        auths.append(await accept(ws))
        await ws.wait_closed()

    async with raw(handler) as server:
        async with session_on(server.url):
            pass
        async with session_on(server.url, conversation_id="conv_saved"):
            pass
    assert auths == [
        {"type": "auth", "token": TOKEN, "store_id": "demo", "user_id": "u1"},
        {"type": "auth", "token": TOKEN, "store_id": "demo", "user_id": "u1", "conversation_id": "conv_saved"},
    ]


async def test_close_is_clean_idempotent_and_ends_events(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        events = session.events()
        await session.close()
        await session.close()
        assert session.closed
        assert await collect(events) == []
        with pytest.raises(UpstreamClosed) as caught:
            await session.send(session.message("late"))
        assert caught.value.code == 1000
    await asyncio.wait_for(sandbox.wait_for_connections(0), TIMEOUT)


@pytest.mark.parametrize("deflate", [False, True])
async def test_compression_is_offered_only_when_asked(deflate: bool) -> None:
    """Per-message deflate costs the relay CPU on every small frame: it is not offered unless configured."""
    offered: list[str | None] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        offered.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        await accept(ws)
        await ws.wait_closed()

    async with raw(handler) as server, session_on(server.url, deflate=deflate):
        pass
    assert len(offered) == 1
    assert ("permessage-deflate" in (offered[0] or "")) is deflate


def test_config_repr_hides_the_token() -> None:
    config = make_config("ws://127.0.0.1:9/api/v1/ws/chat")
    assert "SECRET" not in repr(config)
    assert "SECRET" not in str(config)
    assert "***" in repr(config)
    assert "SECRET" not in repr(config.auth("conv_1"))


def test_config_refuses_non_websocket_urls() -> None:
    with pytest.raises(InvalidUpstreamURL):
        make_config("https://api.vizochok.com/api/v1/ws/chat")
    with pytest.raises(ValueError, match="ws://"):
        make_config("127.0.0.1:9")


# Turns ----------------------------------------------------------------------------------------------------------


async def test_search_turn(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        frames = await collect(session.turn(UserMessage(text="milk", conversation_id=session.conversation_id)))
    assert isinstance(frames[0], Status)
    assert isinstance(frames[-1], ResponseComplete)
    assert any(isinstance(frame, TextDelta) for frame in frames)
    cards = [frame for frame in frames if isinstance(frame, ProductCards)]
    assert cards
    assert "milk-001" in {item.sku for item in cards[0].items}
    assert frames.index(cards[0]) > max(i for i, frame in enumerate(frames) if isinstance(frame, TextDelta))


async def test_add_to_cart_confirms_with_cart_changed(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        frames = await collect(session.turn(actions.add_to_cart("milk-001", 2)))
    changes = [frame for frame in frames if isinstance(frame, CartChanged)]
    assert len(changes) == 1
    assert [(item.sku, item.quantity) for item in changes[0].items] == [("milk-001", Decimal(2))]
    assert isinstance(frames[-1], ResponseComplete)


async def test_turns_follow_one_another(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        for text in ("milk", "bread"):
            frames = await collect(session.turn(session.message(text)))
            assert isinstance(frames[-1], ResponseComplete)
            assert frames[-1].conversation_id == session.conversation_id


async def test_resume_restores_the_cart(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        await collect(session.turn(actions.add_to_cart("milk-001", 2)))
    async with session_on(sandbox.url, conversation_id=session.conversation_id) as resumed:
        assert resumed.restored
        assert isinstance(resumed.start, SessionRestored)
        assert resumed.conversation_id == session.conversation_id
        assert [item.sku for item in resumed.start.selected_items] == ["milk-001"]
        frames = await collect(resumed.turn(resumed.message("milk")))
        assert isinstance(frames[-1], ResponseComplete)


async def test_resume_of_an_unknown_conversation_starts_a_new_one(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url, conversation_id="conv_gone") as session:
        assert not session.restored
        assert session.conversation_id != "conv_gone"


async def test_rate_limit_error_ends_the_turn() -> None:
    async with sandbox_with(messages_per_window=1) as sandbox, session_on(sandbox.url) as session:
        await collect(session.turn(session.message("milk")))
        frames = await collect(session.turn(session.message("bread")))
    assert len(frames) == 1
    assert isinstance(frames[0], ErrorMessage)
    assert frames[0].code == "rate_limit_exceeded"
    assert frames[0].retry_after is not None
    assert frames[0].retry_after > 0


async def test_oversize_frame_is_refused_before_sending(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        with pytest.raises(FrameTooLarge):
            await session.send(session.message("x" * MAX_FRAME_BYTES))
        with pytest.raises(FrameTooLarge):
            await collect(session.turn(session.message("ї" * (MAX_FRAME_BYTES // 2))))
        # Nothing reached the sandbox: it would have answered message_too_large, ending this turn early.
        frames = await collect(session.turn(session.message("milk")))
    assert not any(isinstance(frame, ErrorMessage) for frame in frames)
    assert isinstance(frames[-1], ResponseComplete)


async def test_turn_timeout_covers_the_whole_turn(sandbox: SandboxServer) -> None:
    sandbox.pause_turns()
    try:
        async with session_on(sandbox.url, turn_timeout=0.3) as session:
            frames: list[ServerMessage] = []
            with pytest.raises(TurnTimeout) as caught:
                await collect(session.turn(session.message("milk")), into=frames)
            assert caught.value.timeout == 0.3
            assert any(isinstance(frame, TextDelta) for frame in frames)
    finally:
        sandbox.resume_turns()


async def test_turn_timeout_is_not_reset_by_trickling_frames() -> None:
    async def handler(ws: ServerConnection) -> None:
        await accept(ws)
        await ws.recv()
        while True:
            await ws.send('{"type":"status","code":"thinking"}')
            await asyncio.sleep(0.02)

    async with raw(handler) as server, session_on(server.url, turn_timeout=0.3) as session:
        frames: list[ServerMessage] = []
        with pytest.raises(TurnTimeout):
            await collect(session.turn(session.message("milk")), into=frames)
    assert len(frames) > 3


# Drops and odd frames -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "error"), [(1011, UpstreamClosed), (1006, UpstreamClosed), (4003, AuthRejected)])
async def test_drop_mid_turn_raises_upstream_closed(
    sandbox: SandboxServer, code: int, error: type[UpstreamClosed]
) -> None:
    sandbox.pause_turns()
    try:
        async with session_on(sandbox.url) as session:
            turn = session.turn(session.message("milk"))
            while not isinstance(await first(turn), TextDelta):
                pass
            await sandbox.drop_all(code, "going away")
            with pytest.raises(error) as caught:
                await collect(turn)
            assert type(caught.value) is error
            assert caught.value.code == code
            assert session.closed
            with pytest.raises(error):
                await session.send(session.message("again"))
            with pytest.raises(error):
                await collect(session.events())
    finally:
        sandbox.resume_turns()


async def test_upstream_clean_close_is_still_an_error_for_us(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        await sandbox.drop_all(1000, "bye")
        with pytest.raises(UpstreamClosed) as caught:
            await collect(session.events())
    assert (caught.value.code, caught.value.reason) == (1000, "bye")


async def test_unknown_types_are_yielded(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        await sandbox.send_raw_to_all('{"type":"meal_plan","days":[{"day":1}]}')
        event = await first(session.events())
    assert event == UnknownMessage(type="meal_plan", data={"type": "meal_plan", "days": [{"day": 1}]})


async def test_garbage_is_skipped_and_counted(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        for garbage in (
            "not json",
            "[1,2]",
            '{"type":"text_delta"}',
            json.dumps({"type": "x", "pad": "y" * MAX_SERVER_FRAME_BYTES}),
        ):
            await sandbox.send_raw_to_all(garbage)
        await sandbox.send_raw_to_all('{"type":"text_delta","delta":"ok"}')
        event = await first(session.events())
        assert event == TextDelta(delta="ok")
        assert session.bad_frames == 4
        assert not session.closed


async def test_binary_oversize_and_keepalive_frames_are_not_yielded() -> None:
    pongs: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        await accept(ws)
        await ws.send(b"\x00\x01binary")
        await ws.send(json.dumps({"type": "text_delta", "delta": "z" * (MAX_SERVER_FRAME_BYTES + 10)}))
        await ws.send("{{{")
        await ws.send('{"type":"ping"}')
        pongs.append(await ws.recv())  # type: ignore[arg-type]
        await ws.send('{"type":"pong"}')
        await ws.send('{"type":"text_delta","delta":"after"}')
        await ws.close(1011, "done")

    async with raw(handler) as server, session_on(server.url) as session:
        frames: list[ServerMessage] = []
        with pytest.raises(UpstreamClosed) as caught:
            await collect(session.events(), into=frames)
        assert session.bad_frames == 3
    assert frames == [TextDelta(delta="after")]
    assert pongs == ['{"type":"pong"}']
    assert caught.value.code == 1011


async def test_frames_before_the_start_frame_are_handled() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("garbage")
        await ws.send('{"type":"ping"}')
        await ws.send('{"type":"auth_ok"}')
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send('{"type":"status","code":"early"}')
        await ws.send('{"type":"session_restored","conversation_id":"conv_x","selected_items":[]}')
        await ws.send('{"type":"quick_replies","replies":["yes"]}')
        await ws.wait_closed()

    async with raw(handler) as server, session_on(server.url, conversation_id="conv_x") as session:
        assert session.restored
        assert session.bad_frames == 1
        pending = await first(session.events())
    assert pending.type == "quick_replies"


async def test_frames_keep_their_order_whichever_way_they_are_read() -> None:
    """Whole text frames are handed over as they are read; a fragmented message goes through websockets' assembler.
    A turn's frames come out in the order they were sent either way, and invalid UTF-8 still ends the session."""

    async def handler(ws: ServerConnection) -> None:
        await accept(ws)
        await ws.recv()
        for n in range(3):
            await ws.send(json.dumps({"type": "text_delta", "delta": f"a{n} "}))
        await ws.send(['{"type":"text_delta",', '"delta":"fragmented "}'])  # one message in two frames
        for n in range(3):
            await ws.send(json.dumps({"type": "text_delta", "delta": f"b{n} "}))
        await ws.send('{"type":"text_end"}')
        await ws.send('{"type":"response_complete","conversation_id":"conv_raw"}')
        await ws.recv()
        await ws.send(b'{"type":"text_delta","delta":"\xff"}', text=True)  # not UTF-8
        await ws.wait_closed()

    async with raw(handler) as server, session_on(server.url) as session:
        frames = await collect(session.turn(session.message("milk")))
        said = "".join(frame.delta for frame in frames if isinstance(frame, TextDelta))
        assert said == "a0 a1 a2 fragmented b0 b1 b2 "
        with pytest.raises(UpstreamClosed):  # websockets fails the connection (1007 to the upstream)
            await collect(session.turn(session.message("more")))


# Keepalive ------------------------------------------------------------------------------------------------------


async def test_client_sends_json_pings() -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await accept(ws)
        async for frame in ws:
            await received.put(frame)  # type: ignore[arg-type]
            await ws.send('{"type":"pong"}')

    async with raw(handler) as server, session_on(server.url, ping_interval=0.05) as session:
        async with asyncio.timeout(TIMEOUT):
            assert await received.get() == '{"type":"ping"}'
            assert await received.get() == '{"type":"ping"}'
        assert not session.closed


async def test_silent_upstream_is_given_up() -> None:
    dead: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        await accept(ws)
        ws.transport.pause_reading()  # a dead peer: no frame read, none answered, not even a protocol ping
        dead.append(ws)
        await ws.wait_closed()

    async with raw(handler) as server, session_on(server.url, ping_interval=0.05, pong_timeout=0.1) as session:
        with pytest.raises(UpstreamClosed) as caught:
            await collect(session.events())
        for ws in dead:
            ws.transport.abort()  # the test's own server: it would wait its close timeout for a peer long gone
    assert (caught.value.code, caught.value.reason) == (1011, "keepalive timeout")


async def test_an_upstream_that_answers_no_json_ping_is_alive_while_it_answers_protocol_pings() -> None:
    """Reference §4.4, §22 item 10: whether the API answers a JSON ``ping``, and whether its own pings are JSON, is
    open. A quiet stretch of a turn (the agent working through its tools) with neither was taken for a dead
    connection and closed with 1011; a WebSocket protocol ping, which every peer answers, tells them apart."""
    pings: asyncio.Queue[str] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await accept(ws)
        async for frame in ws:  # JSON pings read, never answered
            await pings.put(frame)  # type: ignore[arg-type]

    async with raw(handler) as server, session_on(server.url, ping_interval=0.05, pong_timeout=0.1) as session:
        async with asyncio.timeout(TIMEOUT):
            for _ in range(10):  # ten keepalive rounds: five times the time allowed for an answer
                assert await pings.get() == '{"type":"ping"}'
        assert not session.closed


async def test_a_replay_a_moment_after_session_restored_is_not_the_first_turns_reply() -> None:
    """A resumed socket's history may come a few milliseconds after ``session_restored`` (read from storage): the
    first turn waits for the socket to be quiet before it sends, as between turns."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type":"auth_ok"}')
        await ws.send('{"type":"session_restored","conversation_id":"c1","selected_items":[]}')
        await asyncio.sleep(0.005)  # the upstream reads the history: the replay is not in the same burst
        for frame in ('{"type":"text_delta","delta":"Earlier reply."}', '{"type":"text_end"}'):
            await ws.send(frame)
        await ws.send('{"type":"response_complete","conversation_id":"c1"}')
        await ws.recv()
        for frame in ('{"type":"text_delta","delta":"New reply."}', '{"type":"text_end"}'):
            await ws.send(frame)
        await ws.send('{"type":"response_complete","conversation_id":"c1"}')
        await ws.wait_closed()

    async with raw(handler) as server, session_on(server.url, "c1") as session:
        got = await collect(session.turn(session.message("bread")))
    assert [event.delta for event in got if isinstance(event, TextDelta)] == ["New reply."]


async def test_keepalive_both_ways_against_the_sandbox() -> None:
    async with (
        sandbox_with(ping_interval=0.05, pong_timeout=0.2) as sandbox,
        session_on(sandbox.url, ping_interval=0.05, pong_timeout=0.5) as session,
    ):
        # Long enough for several pings each way; the sandbox closes 1011 if a pong is missing.
        await asyncio.sleep(0.5)
        assert not session.closed
        frames = await collect(session.turn(session.message("milk")))
        assert isinstance(frames[-1], ResponseComplete)
        assert not any(frame.type in ("ping", "pong") for frame in frames)


# Close codes, retries and backoff -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "retried"),
    [
        (4001, AuthRejected, False),
        (4002, AuthRejected, False),
        (4003, AuthRejected, False),
        (4004, AuthRejected, False),
        (4029, ConnectionLimited, True),
        (1011, UpstreamClosed, True),
        (1000, UpstreamClosed, True),
    ],
)
async def test_close_codes_map_to_exceptions_and_retry_decisions(
    code: int, error: type[UpstreamClosed], retried: bool
) -> None:
    sleep = FakeSleep()
    async with raw(closing_with(code, "nope")) as server:
        with pytest.raises(error) as caught:
            await open_session(make_config(server.url), backoff=no_jitter(2), sleep=sleep)
    assert type(caught.value) is error
    assert (caught.value.code, caught.value.reason) == (code, "nope")
    assert should_retry(caught.value) is retried
    assert sleep.delays == ([1.0, 2.0] if retried else [])
    assert server.connections == (3 if retried else 1)


async def test_sandbox_rejects_a_bad_token_without_retry(sandbox: SandboxServer) -> None:
    sleep = FakeSleep()
    with pytest.raises(AuthRejected) as caught:
        await open_session(make_config(sandbox.url, token="live_nope"), sleep=sleep)
    assert caught.value.code == 4003
    assert sleep.delays == []


async def test_sandbox_connection_limit_is_retried() -> None:
    async with sandbox_with(max_connections_per_key=1) as sandbox, session_on(sandbox.url):
        sleep = FakeSleep()
        with pytest.raises(ConnectionLimited):
            await open_session(make_config(sandbox.url), backoff=no_jitter(3), sleep=sleep)
        assert sleep.delays == [1.0, 2.0, 4.0]


async def test_reconnect_schedule_until_success() -> None:
    refusals = 5

    async def handler(ws: ServerConnection) -> None:
        if server.connections <= refusals:
            await closing_with(4029)(ws)
            return
        await accept(ws, "conv_finally")
        await ws.wait_closed()

    sleep = FakeSleep()
    retries: list[tuple[int, float, type[UpstreamError]]] = []
    async with raw(handler) as server:
        session = await open_session(
            make_config(server.url),
            backoff=Backoff(random=lambda: 0.0),
            sleep=sleep,
            on_retry=lambda attempt, delay, exc: retries.append((attempt, delay, type(exc))),
        )
        await session.close()
    assert session.conversation_id == "conv_finally"
    assert sleep.delays == pytest.approx([0.75, 1.5, 3.0, 6.0, 7.5])
    assert retries == [(n, sleep.delays[n], ConnectionLimited) for n in range(5)]


async def test_unreachable_upstream_gives_up_after_max_attempts() -> None:
    async with raw(closing_with(1000)) as server:
        url = server.url  # the port is free again once the server stops
    sleep = FakeSleep()
    seen: list[int] = []

    async def on_retry(attempt: int, delay: float, exc: UpstreamError) -> None:
        seen.append(attempt)

    with pytest.raises(UpstreamUnavailable):
        await open_session(make_config(url), backoff=no_jitter(4), sleep=sleep, on_retry=on_retry)
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0]
    assert seen == [0, 1, 2, 3]


async def test_wrong_path_is_unavailable(sandbox: SandboxServer) -> None:
    with pytest.raises(UpstreamUnavailable):
        await open_session(make_config(sandbox.url.replace("/chat", "/nope")), backoff=Backoff(max_attempts=0))


async def test_no_auth_ok_is_given_up_after_one_auth_timeout() -> None:
    """An upstream that takes the connection and never answers ``auth``: one attempt, not six (issue 15)."""

    async def silent(ws: ServerConnection) -> None:
        await ws.wait_closed()

    sleep = FakeSleep()
    async with raw(silent) as server:
        with pytest.raises(HandshakeTimeout, match="auth_ok") as caught:
            await open_session(make_config(server.url, auth_timeout=0.1), backoff=no_jitter(5), sleep=sleep)
    assert isinstance(caught.value, UpstreamUnavailable) and not should_retry(caught.value)
    assert sleep.delays == []
    assert server.connections == 1


async def test_no_start_frame_is_a_timeout_too() -> None:
    async def half(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type":"auth_ok"}')
        await ws.wait_closed()

    async with raw(half) as server:
        with pytest.raises(HandshakeTimeout, match="conversation start"):
            await open_session(make_config(server.url, auth_timeout=0.1), backoff=Backoff(max_attempts=3))
    assert server.connections == 1


async def test_a_late_auth_ok_does_not_buy_another_timeout() -> None:
    """The whole handshake fits in one auth_timeout: auth_ok near its end does not restart the clock."""

    async def late(ws: ServerConnection) -> None:
        await ws.recv()
        await asyncio.sleep(0.8)  # the upstream's own slowness, inside the 1 s deadline
        await ws.send('{"type":"auth_ok"}')
        await ws.wait_closed()

    loop = asyncio.get_running_loop()
    async with raw(late) as server:
        started = loop.time()
        with pytest.raises(HandshakeTimeout, match="conversation start"):
            await open_session(make_config(server.url, auth_timeout=1.0), backoff=Backoff(max_attempts=0))
    assert loop.time() - started < 1.5  # the old reset waited 1.8 s


async def test_an_upgrade_that_never_comes_is_not_retried() -> None:
    """TCP accepted, the HTTP upgrade never answered: given up after open_timeout, once."""
    accepted: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sleep = FakeSleep()
    config = make_config(f"ws://127.0.0.1:{port}/ws", open_timeout=0.2)
    try:
        with pytest.raises(HandshakeTimeout):
            await open_session(config, backoff=no_jitter(5), sleep=sleep)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(accepted) == 1 and sleep.delays == []


async def test_conversation_limit_is_final() -> None:
    async with sandbox_with(conversations_per_user_per_day=1) as sandbox:
        async with session_on(sandbox.url):
            pass
        sleep = FakeSleep()
        with pytest.raises(ConversationLimit) as caught:
            await open_session(make_config(sandbox.url), sleep=sleep)
    assert caught.value.limit == 1
    assert caught.value.code == "user_conversation_limit"
    assert sleep.delays == []


@pytest.mark.parametrize(("code", "retried"), [("internal_error", True), ("tenant_daily_token_limit", False)])
async def test_other_start_errors(code: str, retried: bool) -> None:
    async def refusing(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send('{"type":"auth_ok"}')
        await ws.send(json.dumps({"type": "error", "code": code}))
        await ws.wait_closed()

    sleep = FakeSleep()
    async with raw(refusing) as server:
        with pytest.raises(StartRefused) as caught:
            await open_session(make_config(server.url), backoff=no_jitter(1), sleep=sleep)
    assert caught.value.code == code
    assert not isinstance(caught.value, ConversationLimit)
    assert sleep.delays == ([1.0] if retried else [])


def test_should_retry_table() -> None:
    assert should_retry(UpstreamUnavailable("x"))
    assert should_retry(UpstreamClosed(1006))
    assert should_retry(ConnectionLimited(4029))
    assert not should_retry(AuthRejected(4001))
    assert not should_retry(TurnTimeout(1.0))
    assert not should_retry(HandshakeTimeout("silent"))
    assert not should_retry(ConversationLimit(ErrorMessage(code="user_conversation_limit", limit=20)))
    assert not should_retry(ValueError("x"))


# Logging --------------------------------------------------------------------------------------------------------


async def test_token_never_reaches_the_logs(sandbox: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with session_on(sandbox.url) as session:
        await collect(session.turn(session.message("milk")))
        await sandbox.send_raw_to_all("garbage")
    with pytest.raises(AuthRejected):
        await open_session(make_config(sandbox.url, token="bad_SECRET123"))
    ours = [r for r in caplog.records if not r.name.startswith("chat.sandbox")]
    assert ours
    assert not any("SECRET" in record.getMessage() for record in ours)


# Cancellation and concurrent close ------------------------------------------------------------------------------


async def test_close_from_another_task_ends_a_waiting_consumer(sandbox: SandboxServer) -> None:
    async with session_on(sandbox.url) as session:
        consumer = asyncio.create_task(collect(session.events()))
        await asyncio.sleep(0)  # let it start waiting
        await session.close()
        assert await asyncio.wait_for(consumer, TIMEOUT) == []


async def test_cancelled_open_leaves_no_connection_behind() -> None:
    authed, closed = asyncio.Event(), asyncio.Event()

    async def silent(ws: ServerConnection) -> None:
        await ws.recv()
        authed.set()
        await ws.wait_closed()
        closed.set()

    async with raw(silent) as server:
        opening = asyncio.create_task(open_session(make_config(server.url)))
        await asyncio.wait_for(authed.wait(), TIMEOUT)  # mid-handshake: auth sent, no auth_ok yet
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        await asyncio.wait_for(closed.wait(), TIMEOUT)
