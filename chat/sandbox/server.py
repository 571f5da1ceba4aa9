"""The offline sandbox upstream: the whole VIZOCHOK chat protocol over a real WebSocket.

It is the default upstream of the app and of the test suite, so it follows the protocol reference
(``shared/vizochok-protocol.md``) rather than any particular client: auth first within a deadline, close codes
4001–4004 and 4029, ``conversation_started``/``session_restored``, a per-connection sliding-window rate limit,
``agent_busy`` while a turn runs, ``message_too_large``, ``invalid_json``, JSON keepalive both ways and sessions
that outlive a connection. Choices where the reference is silent are listed in ``docs/sandbox.md``.

Every frame is read with :func:`parse_client` and written with :func:`to_json` of the typed classes in
:mod:`chat.vizochok.messages`. No Django imports: ``python -m chat.sandbox.server`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import math
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chat.vizochok.messages import (
    MAX_FRAME_BYTES,
    Action,
    Auth,
    AuthOk,
    ConversationStarted,
    ErrorMessage,
    FrameTooLarge,
    MalformedFrame,
    Ping,
    Pong,
    ResponseComplete,
    SessionRestored,
    Status,
    TextDelta,
    TextEnd,
    UserMessage,
    encoded_size,
    parse_client,
    to_json,
)
from chat.vizochok.quiet_log import quiet_websockets_logger

from .assistant import Assistant, Frame, InvalidInput, Session, TextRequest, read_input
from .assistant import Request as TurnRequest
from .catalog import DEFAULT_IMAGE_BASE, Catalog

logger = logging.getLogger("chat.sandbox")

PATH = "/api/v1/ws/chat"
TOKEN_PREFIXES = ("pk_test_", "sk_test_")
#: A ``store_id``, when sent, must look like an identifier; anything else (including "") closes with 4004.
STORE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")

CLOSE_AUTH_TIMEOUT = 4001
CLOSE_AUTH_INVALID = 4002
CLOSE_BAD_TOKEN = 4003
CLOSE_BAD_STORE = 4004
CLOSE_TOO_MANY = 4029
CLOSE_POLICY = 1008
CLOSE_PONG_TIMEOUT = 1011


@dataclass
class SandboxConfig:
    """Every limit of the reference, adjustable so tests can use tiny timeouts."""

    auth_timeout: float = 10.0
    #: Seconds between server JSON pings; 0 or less disables them.
    ping_interval: float = 30.0
    pong_timeout: float = 60.0
    #: ``text_delta`` frames per second; 0 = as fast as possible (still yielding to the loop between chunks).
    tokens_per_second: float = 40.0
    max_connections_per_key: int = 3
    messages_per_window: int = 10
    window_seconds: float = 60.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    session_ttl: float = 3600.0
    turn_timeout: float = 120.0
    conversations_per_user_per_day: int = 20
    image_base: str = DEFAULT_IMAGE_BASE
    clock: Callable[[], float] = time.monotonic
    #: Benchmark replies (off by default): the text ``bench <tokens> [<tokens per second>]`` gets a fixed reply of
    #: that many ``text_delta`` frames, so ``manage.py bench_relay`` can choose the reply length and pace per turn.
    bench_replies: bool = False


def _key_id(token: str) -> str:
    """A stable, non-secret handle for a token: limits are per key, and tokens never sit in memory maps or logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def new_conversation_id() -> str:
    return "conv_" + secrets.token_hex(8)


class _Connection:
    """One client socket: auth, session init, then a reader loop that spawns turns as tasks."""

    def __init__(self, server: SandboxServer, ws: ServerConnection) -> None:
        self.server = server
        self.config = server.config
        self.ws = ws
        self.key: str | None = None
        self.session: Session | None = None
        self.authenticated = False
        self._stamps: deque[float] = deque()
        self._pong = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # Sending ----------------------------------------------------------------------------------------------------

    async def send(self, frame: Frame | AuthOk | ConversationStarted | SessionRestored | Ping | Pong) -> None:
        await self.send_text(to_json(frame))

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            await self.ws.send(text)

    async def error(self, code: str, **extra: Any) -> None:
        await self.send(ErrorMessage(code=code, **extra))

    # Lifecycle --------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        auth = await self._authenticate()
        if auth is None:
            return
        key = _key_id(auth.token)
        if self.server._per_key[key] >= self.config.max_connections_per_key:
            logger.info("key %s: connection refused, %d already open", key, self.server._per_key[key])
            await self.ws.close(CLOSE_TOO_MANY, "too many connections")
            return
        self.server._per_key[key] += 1
        self.key = key
        try:
            await self._serve(auth)
        finally:
            self.server._per_key[key] -= 1
            for task in list(self._tasks):
                task.cancel()

    async def _serve(self, auth: Auth) -> None:
        try:
            await self.send(AuthOk())
            self.authenticated = True
            if not await self._open_session(auth):
                return
            if self.config.ping_interval > 0:
                self._spawn(self._keepalive())
            async for raw in self.ws:
                await self._on_frame(raw)
        except ConnectionClosed:
            pass

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _authenticate(self) -> Auth | None:
        """The first frame must be a valid ``auth`` (reference §2); any failure closes with a 400x code."""
        try:
            async with asyncio.timeout(self.config.auth_timeout):
                raw = await self.ws.recv()
        except TimeoutError:
            await self.ws.close(CLOSE_AUTH_TIMEOUT, "auth timeout")
            return None
        except ConnectionClosed:
            return None
        auth = self._read_auth(raw)
        if auth is None:
            await self.ws.close(CLOSE_AUTH_INVALID, "auth expected")
            return None
        if not auth.token.startswith(TOKEN_PREFIXES) or len(auth.token) <= len("pk_test_"):
            await self.ws.close(CLOSE_BAD_TOKEN, "invalid api key")
            return None
        if auth.store_id is not None and not STORE_ID.fullmatch(auth.store_id):
            await self.ws.close(CLOSE_BAD_STORE, "invalid store_id")
            return None
        return auth

    def _read_auth(self, raw: str | bytes) -> Auth | None:
        if isinstance(raw, bytes) or encoded_size(raw) > self.config.max_frame_bytes:
            return None
        try:
            frame = parse_client(raw)
        except MalformedFrame:
            return None
        return frame if isinstance(frame, Auth) else None

    async def _open_session(self, auth: Auth) -> bool:
        """Restore a live conversation named in ``auth``, else start one (within the daily cap)."""
        now = self.config.clock()
        self.server._expire_sessions(now)
        session = self.server.sessions.get(auth.conversation_id or "")
        if session is not None:
            session.last_activity = now
            self.session = session
            assistant = self.server.assistant
            items, total = assistant.cart_items(session), assistant.cart_total(session)
            await self.send(SessionRestored(conversation_id=session.conversation_id, selected_items=items, total=total))
            for frame in session.pending:
                await self.send(frame)
            return True
        if not self.server._count_conversation(self._identity(auth)):
            limit = self.config.conversations_per_user_per_day
            await self.error("user_conversation_limit", limit=limit)
            await self.ws.close(CLOSE_POLICY, "conversation limit")
            return False
        self.session = self.server._new_session(now)
        await self.send(ConversationStarted(conversation_id=self.session.conversation_id))
        return True

    def _identity(self, auth: Auth) -> str:
        """Whose daily budget a conversation uses. Public keys cannot vouch for ``user_id``, so they collapse onto
        the key (reference §14, ``key:{api_key_id}``); secret keys count per ``user_id`` when given."""
        assert self.key is not None
        if auth.token.startswith("sk_") and auth.user_id:
            return f"user:{auth.user_id}"
        return f"key:{self.key}"

    # Reading ----------------------------------------------------------------------------------------------------

    async def _on_frame(self, raw: str | bytes) -> None:
        size = len(raw) if isinstance(raw, bytes) else encoded_size(raw)
        if size > self.config.max_frame_bytes:
            await self.error("message_too_large", max_size=self.config.max_frame_bytes)
            return
        if isinstance(raw, bytes):
            await self.error("invalid_json")
            return
        try:
            frame = parse_client(raw)
        except FrameTooLarge:
            await self.error("message_too_large", max_size=self.config.max_frame_bytes)
            return
        except MalformedFrame:
            await self.error("invalid_json")
            return
        if isinstance(frame, Ping):
            await self.send(Pong())
        elif isinstance(frame, Pong):
            self._pong.set()
        elif isinstance(frame, (UserMessage, Action)):
            await self._on_request(frame)
        else:  # a second auth or an unknown type
            await self.error("invalid_json")

    async def _on_request(self, frame: UserMessage | Action) -> None:
        try:
            request = read_input(frame)
        except InvalidInput:
            await self.error("invalid_json")
            return
        retry_after = self._rate_limited()
        if retry_after is not None:
            await self.error("rate_limit_exceeded", retry_after=retry_after)
            return
        session = self._session_for(frame)
        if session.busy:
            await self.error("agent_busy")
            return
        session.busy = True
        self._spawn(self._run_turn(session, request))

    def _rate_limited(self) -> int | None:
        """Sliding window of accepted ``message``/``action`` frames on this connection (reference §14)."""
        now, window = self.config.clock(), self.config.window_seconds
        while self._stamps and now - self._stamps[0] >= window:
            self._stamps.popleft()
        if len(self._stamps) >= self.config.messages_per_window:
            return max(1, math.ceil(self._stamps[0] + window - now))
        self._stamps.append(now)
        return None

    def _session_for(self, frame: UserMessage | Action) -> Session:
        """A ``message`` naming another live conversation switches to it; an unknown id is ignored."""
        assert self.session is not None
        wanted = frame.conversation_id if isinstance(frame, UserMessage) else None
        if wanted and wanted != self.session.conversation_id:
            other = self.server.sessions.get(wanted)
            if other is not None and self.config.clock() - other.last_activity <= self.config.session_ttl:
                self.session = other
        return self.session

    # Turns and keepalive ----------------------------------------------------------------------------------------

    async def _run_turn(self, session: Session, request: TurnRequest) -> None:
        bench = _bench_request(request) if self.config.bench_replies else None
        try:
            async with asyncio.timeout(self.config.turn_timeout):
                if bench is not None:
                    frames = _bench_frames(session, bench[0])
                else:
                    frames = self.server.assistant.respond(session, request)
                for frame in frames:
                    if bench is not None and isinstance(frame, TextDelta):
                        frame = TextDelta(delta=stamp_bench_delta(frame.delta))
                    await self.send(frame)
                    if isinstance(frame, TextDelta):
                        await self._pace(bench[1] if bench is not None else None)
        except TimeoutError:
            logger.warning("conversation %s: turn exceeded %ss", session.conversation_id, self.config.turn_timeout)
            await self._error_quietly("internal_error")
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("conversation %s: turn failed", session.conversation_id)
            await self._error_quietly("internal_error")
        finally:
            session.busy = False
            session.last_activity = self.config.clock()

    async def _pace(self, rate: float | None = None) -> None:
        rate = self.config.tokens_per_second if rate is None else rate
        await asyncio.sleep(1 / rate if rate > 0 else 0)
        await self.server.turn_gate.wait()

    async def _error_quietly(self, code: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.error(code)

    async def _keepalive(self) -> None:
        """JSON ping every ``ping_interval``; no JSON pong within ``pong_timeout`` closes 1011 (reference §11)."""
        try:
            while True:
                await asyncio.sleep(self.config.ping_interval)
                self._pong.clear()
                await self.send(Ping())
                try:
                    async with asyncio.timeout(self.config.pong_timeout):
                        await self._pong.wait()
                except TimeoutError:
                    logger.info("closing a connection: no pong within %ss", self.config.pong_timeout)
                    await self.ws.close(CLOSE_PONG_TIMEOUT, "pong timeout")
                    return
        except ConnectionClosed:
            pass


_BENCH = re.compile(r"bench (\d{1,5})(?: (\d+(?:\.\d+)?))?")
_BENCH_WORDS = ("milk", "bread", "apples", "cheese", "butter", "eggs", "rice", "tea")


def _bench_request(request: TurnRequest) -> tuple[int, float | None] | None:
    """``bench <tokens> [<pace>]`` as (tokens, pace or None for the configured pace); None for any other input."""
    match = _BENCH.fullmatch(request.text) if isinstance(request, TextRequest) else None
    if match is None:
        return None
    return int(match[1]), float(match[2]) if match[2] is not None else None


#: A benchmark delta ends in ``@`` and the wall-clock microsecond it was sent, zero-padded: ``milk0@1795…123 ``.
BENCH_STAMP = re.compile(r"@(\d{16}) ")
_BENCH_STAMP_CHARS = 18


def bench_reply_chars(tokens: int) -> int:
    """The length of a whole stamped benchmark reply of ``tokens`` tokens."""
    return sum(len(delta) + _BENCH_STAMP_CHARS for delta in bench_deltas(tokens))


def bench_deltas(tokens: int) -> list[str]:
    """The deltas of a benchmark reply (one word each, before the stamp).

    Each is stamped with the time it leaves the sandbox (:func:`stamp_bench_delta`), so a client on the same host
    measures every frame's transit from the upstream, whatever relay and coalescing sit in between.
    """
    return [f"{_BENCH_WORDS[i % len(_BENCH_WORDS)]}{i}" for i in range(tokens)]


def stamp_bench_delta(delta: str) -> str:
    return f"{delta}@{time.time_ns() // 1000:016d} "


def _bench_frames(session: Session, tokens: int) -> list[Frame]:
    """A fixed reply: one status, ``tokens`` deltas, text_end, response_complete."""
    session.turns += 1
    deltas = [TextDelta(delta=delta) for delta in bench_deltas(tokens)]
    return [Status(code="thinking"), *deltas, TextEnd(), ResponseComplete(conversation_id=session.conversation_id)]


class SandboxServer:
    """Owns the listening socket, the sessions (which survive reconnects) and the per-key/per-user counters."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.catalog = Catalog(image_base=self.config.image_base)
        self.assistant = Assistant(self.catalog)
        self.sessions: dict[str, Session] = {}
        #: Set = turns stream; cleared = every turn stops after its next ``text_delta`` (fault injection).
        self.turn_gate = asyncio.Event()
        self.turn_gate.set()
        self._live: set[_Connection] = set()
        self._per_key: Counter[str] = Counter()
        self._daily: Counter[tuple[str, str]] = Counter()
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self.host = ""
        self.port = 0

    # Lifecycle --------------------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._route,
            # Keepalive is the protocol's JSON ping/pong, not websockets' control frames.
            ping_interval=None,
            # Far above max_frame_bytes so an oversize frame gets a message_too_large answer, not a 1009 close.
            max_size=max(2**20, 4 * self.config.max_frame_bytes),
            logger=quiet_websockets_logger("chat.sandbox.websockets"),
        )
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("sandbox upstream listening on %s", self.url)
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{PATH}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    async def __aenter__(self) -> SandboxServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Fault injection (for tests; nothing happens unless called) -------------------------------------------------

    @property
    def connections(self) -> int:
        """Open sockets, authenticated or not."""
        return len(self._live)

    async def wait_for_connections(self, count: int) -> None:
        """Wait until exactly ``count`` sockets are open (a server notices a close a moment after the client)."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._live) == count)

    async def drop_all(self, code: int = 1011, reason: str = "") -> None:
        """Close every live connection with ``code``; 1006 aborts the TCP connection without a close frame."""
        for connection in list(self._live):
            if code == 1006:
                connection.ws.transport.abort()
            else:
                await connection.ws.close(code, reason)

    def pause_turns(self) -> None:
        """Hold every turn right after its next ``text_delta`` until :meth:`resume_turns`."""
        self.turn_gate.clear()

    def resume_turns(self) -> None:
        self.turn_gate.set()

    async def send_raw_to_all(self, text: str) -> None:
        """Push an arbitrary text frame (garbage, unknown types) to every authenticated connection."""
        for connection in list(self._live):
            if connection.authenticated:
                with contextlib.suppress(ConnectionClosed):
                    await connection.send_text(text)

    # Internals --------------------------------------------------------------------------------------------------

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        connection = _Connection(self, ws)
        await self._track(connection, add=True)
        try:
            await connection.run()
        except Exception:
            logger.exception("connection handler failed")
        finally:
            await self._track(connection, add=False)

    async def _track(self, connection: _Connection, *, add: bool) -> None:
        async with self._changed:
            if add:
                self._live.add(connection)
            else:
                self._live.discard(connection)
            self._changed.notify_all()

    def _expire_sessions(self, now: float) -> None:
        """Drop sessions idle longer than ``session_ttl`` (the reference's 1-hour Redis expiry)."""
        ttl = self.config.session_ttl
        for conversation_id in [cid for cid, s in self.sessions.items() if now - s.last_activity > ttl and not s.busy]:
            del self.sessions[conversation_id]

    def _count_conversation(self, identity: str) -> bool:
        """Count one new conversation for today (UTC); False once the daily cap is reached."""
        bucket = (identity, datetime.now(UTC).date().isoformat())
        if self._daily[bucket] >= self.config.conversations_per_user_per_day:
            return False
        self._daily[bucket] += 1
        return True

    def _new_session(self, now: float) -> Session:
        session = Session(conversation_id=new_conversation_id(), last_activity=now)
        self.sessions[session.conversation_id] = session
        return session


async def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: SandboxConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve forever (until cancelled); ``on_ready`` receives the URL once the socket is bound."""
    server = SandboxServer(config)
    await server.start(host, port)
    if on_ready is not None:
        on_ready(server.url)
    try:
        await server.serve_forever()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m chat.sandbox.server``: the same as the management command, without Django."""
    parser = argparse.ArgumentParser(description="Run the offline VIZOCHOK sandbox upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--pace", type=float, default=40.0, help="text_delta frames per second (0 = unpaced)")
    parser.add_argument("--auth-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config = SandboxConfig(tokens_per_second=args.pace, auth_timeout=args.auth_timeout)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sandbox(args.host, args.port, config, on_ready=lambda url: print(url, flush=True)))


if __name__ == "__main__":
    main()
