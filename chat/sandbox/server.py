"""The offline sandbox upstream: the whole VIZOCHOK chat protocol over a real WebSocket.

It is the default upstream of the app and of the test suite, so it follows the protocol reference
(VIZOCHOK's chat protocol reference) rather than any particular client: auth first within a deadline, close codes
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
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
    CartChanged,
    CartItem,
    ConversationStarted,
    ErrorMessage,
    FrameTooLarge,
    IngredientChecklist,
    MalformedFrame,
    Ping,
    Pong,
    ProductCards,
    QuickReplies,
    ResponseComplete,
    SessionRestored,
    TextDelta,
    TextEnd,
    UserMessage,
    encoded_size,
    parse_client,
    to_json,
)
from chat.vizochok.quiet_log import quiet_websockets_logger

from .assistant import Assistant, Frame, InvalidInput, Session, read_input
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
#: The count of ``count_before_auth``: sockets that have named no key yet (the sandbox serves one key).
BEFORE_AUTH = "(before auth)"
CLOSE_POLICY = 1008
CLOSE_PONG_TIMEOUT = 1011


@dataclass
class Reply:
    """One turn's frames as a :data:`ReplyHook` supplies them in place of the assistant's."""

    frames: list[Frame]
    #: ``text_delta`` frames per second for this reply; None = the configured ``tokens_per_second``.
    pace: float | None = None
    #: Applied to each ``text_delta``'s text at the moment it is sent, so it can carry the send time.
    on_delta: Callable[[str], str] | None = None


#: ``(session, request) -> Reply | None``: the sandbox's one seam for other replies (the benchmark's live in
#: ``bench/``). None lets the assistant answer. The switches below still apply to a hook's frames.
ReplyHook = Callable[[Session, TurnRequest], Reply | None]

#: The text block ``block_after_complete`` sends after a turn's ``response_complete``, one delta per item.
LATE_BLOCK = ("Late ", "words.")
#: The earlier reply ``replay_history`` sends again after ``session_restored``.
REPLAYED_BLOCK = ("Earlier ", "reply.")


#: The readings of ``session_restored``'s ``selected_items`` (:attr:`SandboxConfig.restored_items`).
RESTORED_ITEMS = ("cart", "skus", "sku_quantity")
#: The readings of a ``conversation_id`` in ``auth`` (:attr:`SandboxConfig.resume_in_auth`).
RESUME_IN_AUTH = ("restores", "ignored", "refused")
#: The readings of the choices' shapes (:attr:`SandboxConfig.ui_shapes`).
UI_SHAPES = ("objects", "plain")


@dataclass
class SandboxConfig:
    """Every limit of the reference, adjustable so tests can use tiny timeouts.

    The connection code reads this object at the moment of use, never a copy, so tests may change a field (or
    replace ``server.config``) between turns.
    """

    auth_timeout: float = 10.0
    #: Seconds between server JSON pings; 0 or less disables them.
    ping_interval: float = 30.0
    pong_timeout: float = 60.0
    #: ``text_delta`` frames per second; 0 = as fast as possible (still yielding to the loop between chunks).
    tokens_per_second: float = 40.0
    #: Every reply takes about this many seconds, its ``text_delta`` frames spread evenly over it (a peak-hour
    #: benchmark wants a known service time whatever the reply's length); 0 = paced by ``tokens_per_second``.
    reply_seconds: float = 0.0
    max_connections_per_key: int = 3
    messages_per_window: int = 10
    window_seconds: float = 60.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    session_ttl: float = 3600.0
    turn_timeout: float = 120.0
    conversations_per_user_per_day: int = 20
    image_base: str = DEFAULT_IMAGE_BASE
    clock: Callable[[], float] = time.monotonic
    #: Replies other than the assistant's (see :data:`ReplyHook`); None = the assistant answers every turn.
    reply_hook: ReplyHook | None = None

    # How turns end. The reference leaves these open (§6, §22 item 11); each switch is one reading of it, so a
    # client can be tested against every one. All off = the sandbox's own reading (docs/sandbox.md).

    #: An ``error`` that ends a turn (``internal_error``, an injected failure) is followed by ``response_complete``.
    error_completes: bool = False
    #: Every turn's ``response_complete`` is sent twice in a row.
    complete_twice: bool = False
    #: After a turn's ``response_complete``, one more text block (:data:`LATE_BLOCK`, then ``text_end``): a stray
    #: frame between turns.
    block_after_complete: bool = False
    #: Every rich frame (``product_cards``, ``quick_replies``, ``ingredient_checklist``, ``cart_changed``) and
    #: every ``text_end`` of a turn is sent twice in a row.
    repeat_frames: bool = False
    #: ``response_complete`` comes this many seconds after the turn's last other frame (0 = at once).
    late_complete_seconds: float = 0.0
    #: A turn whose socket closes runs on to its end (its frames dropped) and keeps its conversation busy, as the
    #: real API's Redis lock does; off = the turn ends with its socket.
    turns_outlive_socket: bool = False

    # Where the limit counts. The key arrives only in ``auth`` (reference §3, §4.1), so the sandbox counts a socket
    # from its ``auth`` (a 4th is closed with 4029 then); the reference does not say that the API cannot count
    # sockets that have not authenticated yet.

    #: Every socket counts against the limit from its connection, before ``auth``: a 4th open socket is closed with
    #: 4029 at once, authenticated or not.
    count_before_auth: bool = False

    # What ``session_restored`` carries. The reference gives only "``selected_items``: [...]" (§8.3, §22 item 6).

    #: The shape of ``selected_items``: ``"cart"`` (whole cart lines with a ``total``, as ``cart_changed``'s: the
    #: sandbox's own reading), ``"skus"`` (bare SKU strings) or ``"sku_quantity"`` (``{sku, quantity}`` only, no
    #: ``total``).
    restored_items: str = "cart"
    #: ``session_restored`` does not repeat the conversation's id (the client named it in ``auth``).
    restored_without_id: bool = False
    #: What a ``conversation_id`` in ``auth`` does (reference §4.1, §22 item 7: ``auth`` or only ``message``):
    #: ``"restores"`` that conversation (the mobile guide's reading, the sandbox's own); ``"ignored"``: every
    #: socket starts a new one, and a ``message`` naming a live one continues it; ``"refused"``: an ``auth`` with the
    #: field is answered with ``invalid_json`` and closed (1008), as a strict schema would; ``message`` as ignored.
    resume_in_auth: str = "restores"
    #: A client's JSON ``ping`` is answered with a JSON ``pong``; off: never answered (reference §4.4: "whether the
    #: server answers with a pong frame is not stated"). Protocol pings are answered either way, as by any peer.
    json_pongs: bool = True
    #: A client's JSON ``ping`` counts against the per-socket message window like a message (reference §11, §22
    #: item 10: "whether ping/pong count toward the 10-per-60-s limit").
    pings_count: bool = False
    #: The shapes of the choices (reference §9, §22 item 3, partly guessed): ``"objects"`` (quick replies as
    #: ``{label, value}``, checklist items as objects with ids, cards under ``items``: the sandbox's own reading) or
    #: ``"plain"`` (quick replies as bare strings under ``options``, checklist items as bare names under
    #: ``ingredients``, cards under ``products``).
    ui_shapes: str = "objects"
    #: Every ``action`` frame is answered with ``invalid_json``: the real schema is not the reference's guess (§7,
    #: §22 item 2), which is all the sandbox knows. Counted in ``SandboxServer.actions_refused``.
    refuse_actions: bool = False
    #: After ``session_restored``, an earlier reply is replayed (:data:`REPLAYED_BLOCK`, ``text_end``,
    #: ``response_complete``) before the pending choices and before the client sends anything.
    replay_history: bool = False

    def __post_init__(self) -> None:
        """A reading the sandbox does not know is refused when the config is made, not at the first frame."""
        for name, known in (
            ("restored_items", RESTORED_ITEMS),
            ("resume_in_auth", RESUME_IN_AUTH),
            ("ui_shapes", UI_SHAPES),
        ):
            if getattr(self, name) not in known:
                raise ValueError(f"{name} must be one of {', '.join(known)}, got {getattr(self, name)!r}")


def _key_id(token: str) -> str:
    """A stable, non-secret handle for a token: limits are per key, and tokens never sit in memory maps or logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def new_conversation_id() -> str:
    return "conv_" + secrets.token_hex(8)


class _Connection:
    """One client socket: auth, session init, then a reader loop that spawns turns as tasks."""

    def __init__(self, server: SandboxServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.key: str | None = None
        self.session: Session | None = None
        self.authenticated = False
        self._stamps: deque[float] = deque()
        self._pong = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> SandboxConfig:
        """The server's config as it is now: tests flip switches between turns of an open socket."""
        return self.server.config

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
        if not self.config.count_before_auth:
            await self._run()
            return
        # Every socket counts from its connection, before any key is named (the sandbox serves one key).
        if not await self._admit(BEFORE_AUTH):
            return
        try:
            await self._run(counted=True)
        finally:
            self.server._per_key[BEFORE_AUTH] -= 1

    async def _admit(self, key: str) -> bool:
        """Count this socket against ``key``'s limit, or close it with 4029 (reference §14) if the limit is full."""
        if self.server._per_key[key] >= self.config.max_connections_per_key:
            logger.info("key %s: connection refused, %d already open", key, self.server._per_key[key])
            self.server.refused_too_many += 1
            await self.ws.close(CLOSE_TOO_MANY, "too many connections")
            return False
        self.server._per_key[key] += 1
        return True

    async def _run(self, *, counted: bool = False) -> None:
        auth = await self._authenticate()
        if auth is None:
            return
        key = _key_id(auth.token)
        if not counted and not await self._admit(key):
            return
        self.key = key
        try:
            await self._serve(auth)
        finally:
            if not counted:
                self.server._per_key[key] -= 1
            ending = list(self._tasks)
            if not self.config.turns_outlive_socket:
                ending += self._turns
            for task in ending:
                task.cancel()

    async def _serve(self, auth: Auth) -> None:
        try:
            await self.send(AuthOk())
            self.authenticated = True
            self.server._authenticated(self)
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
        if auth.conversation_id is not None and self.config.resume_in_auth == "refused":
            await self.error("invalid_json")
            await self.ws.close(CLOSE_POLICY, "unknown field in auth")
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
        named = auth.conversation_id if self.config.resume_in_auth == "restores" else None
        session = self.server.sessions.get(named or "")
        if session is not None:
            session.last_activity = now
            self.session = session
            assistant = self.server.assistant
            items, total = assistant.cart_items(session), assistant.cart_total(session)
            await self.send_text(self._restored(session.conversation_id, items, total))
            if self.config.replay_history:
                for delta in REPLAYED_BLOCK:
                    await self.send(TextDelta(delta=delta))
                await self.send(TextEnd())
                await self.send(ResponseComplete(conversation_id=session.conversation_id))
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

    def _restored(self, conversation_id: str, items: tuple[CartItem, ...], total: Decimal) -> str:
        """``session_restored`` in the configured reading (:attr:`SandboxConfig.restored_items`)."""
        frame = SessionRestored(conversation_id=conversation_id, selected_items=items, total=total).to_dict()
        shape = self.config.restored_items
        if shape == "skus":
            frame["selected_items"] = [item.sku for item in items]
        elif shape == "sku_quantity":
            frame["selected_items"] = [{"sku": item.sku, "quantity": item.quantity} for item in items]
            del frame["total"]
        elif shape != "cart":
            raise ValueError(f"unknown restored_items reading {shape!r}")
        if self.config.restored_without_id:
            del frame["conversation_id"]
        return to_json(frame)

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
            if self.config.pings_count:
                self._rate_limited()  # stamped like a message (a ping over the window is not refused: it has no reply)
            if self.config.json_pongs:
                await self.send(Pong())
        elif isinstance(frame, Pong):
            self._pong.set()
        elif isinstance(frame, Action) and self.config.refuse_actions:
            self.server.actions_refused += 1
            await self.error("invalid_json")
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
            self.server.rate_limited += 1
            await self.error("rate_limit_exceeded", retry_after=retry_after)
            return
        session = self._session_for(frame)
        if session.busy:
            await self.error("agent_busy")
            return
        session.busy = True
        task = asyncio.create_task(self._run_turn(session, request))
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)
        self.server._track_turn(task)

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
        wanted = frame.conversation_id if isinstance(frame, UserMessage) else frame.payload.get("conversation_id")
        if isinstance(wanted, str) and wanted and wanted != self.session.conversation_id:
            other = self.server.sessions.get(wanted)
            if other is not None and self.config.clock() - other.last_activity <= self.config.session_ttl:
                self.session = other
        return self.session

    # Turns and keepalive ----------------------------------------------------------------------------------------

    async def _run_turn(self, session: Session, request: TurnRequest) -> None:
        turn = _TurnState(session, self.server._take_failure())
        try:
            try:  # the outer try catches a socket closing while the inner handlers send the error
                async with asyncio.timeout(self.config.turn_timeout):
                    await self._play(turn, request)
            except TimeoutError:
                logger.warning("conversation %s: turn exceeded %ss", session.conversation_id, self.config.turn_timeout)
                await self._fail(turn, "internal_error")
            except ConnectionClosed:
                pass
            except Exception:
                logger.exception("conversation %s: turn failed", session.conversation_id)
                await self._fail(turn, "internal_error")
        except ConnectionClosed:
            pass
        finally:
            if not turn.completed:  # else _complete freed it, and a next turn may hold it already
                session.busy = False
            session.last_activity = self.config.clock()

    async def _play(self, turn: _TurnState, request: TurnRequest) -> None:
        """Send one turn's frames, ending the way the switches say."""
        hook = self.config.reply_hook
        reply = hook(turn.session, request) if hook is not None else None
        if reply is None:
            reply = Reply(self.server.assistant.respond(turn.session, request))
        frames = reply.frames if turn.failure is None else _cut(reply.frames, turn.failure.after_deltas)
        pace = reply.pace
        if pace is None and self.config.reply_seconds > 0:
            deltas = sum(1 for frame in frames if isinstance(frame, TextDelta))
            pace = deltas / self.config.reply_seconds if deltas else None
        for frame in frames:
            if isinstance(frame, ResponseComplete):
                await self._complete(turn, frame)
                continue
            if isinstance(frame, TextDelta) and reply.on_delta is not None:
                frame = TextDelta(delta=reply.on_delta(frame.delta))
            await self._emit(frame)
            if isinstance(frame, TextDelta):
                await self._pace(pace)
        if turn.failure is not None:
            await self._fail(turn, turn.failure.code)

    async def _emit(self, frame: Frame) -> None:
        """Send a turn's frame: twice when ``repeat_frames`` says so; dropped when the turn outlives its socket."""
        copies = 2 if self.config.repeat_frames and isinstance(frame, _REPEATED) else 1
        text = to_json(self._shaped(frame))
        for _ in range(copies):
            try:
                await self.send_text(text)
            except ConnectionClosed:
                if not self.config.turns_outlive_socket:
                    raise

    def _shaped(self, frame: Frame) -> Frame | dict[str, Any]:
        """``frame`` in the configured reading of the choices' shapes (:attr:`SandboxConfig.ui_shapes`)."""
        if self.config.ui_shapes == "objects":
            return frame
        if self.config.ui_shapes != "plain":
            raise ValueError(f"unknown ui_shapes reading {self.config.ui_shapes!r}")
        if isinstance(frame, QuickReplies):
            return {"type": frame.type, "options": [reply.label for reply in frame.replies]}
        if isinstance(frame, IngredientChecklist):
            data = frame.to_dict()
            del data["items"]
            return {**data, "ingredients": [item.name for item in frame.items]}
        if isinstance(frame, ProductCards):
            return {"type": frame.type, "products": frame.to_dict()["items"]}
        return frame

    async def _fail(self, turn: _TurnState, code: str) -> None:
        """End a turn with ``error {code}``, then ``response_complete`` only when ``error_completes``."""
        if turn.completed:  # the client already saw this turn end; an error now would land in the next one
            return
        await self._emit(ErrorMessage(code=code))
        if self.config.error_completes:
            await self._complete(turn, ResponseComplete(conversation_id=turn.session.conversation_id))

    async def _complete(self, turn: _TurnState, frame: ResponseComplete) -> None:
        """``response_complete`` (late, twice, or followed by a stray block when switched so); the conversation is
        free from the first copy on, as the real API's lock is released when the agent finishes."""
        if self.config.late_complete_seconds > 0:
            await asyncio.sleep(self.config.late_complete_seconds)
        await self._emit(frame)
        turn.completed = True
        turn.session.busy = False
        # Sent without pacing or a yield in between, so they precede any next turn's frames on this socket.
        if self.config.complete_twice:
            await self._emit(frame)
        if self.config.block_after_complete:
            for delta in LATE_BLOCK:
                await self._emit(TextDelta(delta=delta))
            await self._emit(TextEnd())

    async def _pace(self, rate: float | None = None) -> None:
        rate = self.config.tokens_per_second if rate is None else rate
        await asyncio.sleep(1 / rate if rate > 0 else 0)
        await self.server.turn_gate.wait()

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


#: Frames ``repeat_frames`` sends twice.
_REPEATED = (ProductCards, QuickReplies, IngredientChecklist, CartChanged, TextEnd)


@dataclass(frozen=True)
class _Failure:
    """A fault queued with :meth:`SandboxServer.fail_next_turn`."""

    code: str
    after_deltas: int


@dataclass
class _TurnState:
    session: Session
    failure: _Failure | None
    #: Set once the first ``response_complete`` is out: the client considers the turn over.
    completed: bool = False


def _cut(frames: list[Frame], after_deltas: int) -> list[Frame]:
    """The frames of a reply before its ``after_deltas + 1``-th ``text_delta``, without ``response_complete``."""
    kept: list[Frame] = []
    deltas = 0
    for frame in frames:
        if isinstance(frame, TextDelta):
            if deltas == after_deltas:
                break
            deltas += 1
        if not isinstance(frame, ResponseComplete):
            kept.append(frame)
    return kept


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
        #: Sockets accepted since the server started, and the most open at once, authenticated or not.
        self.accepted = 0
        self.peak_connections = 0
        #: The most sockets authenticated at once: what the key's limit counts (reference §14).
        self.peak_authenticated = 0
        #: Running turns of every socket (a turn may outlive its socket with ``turns_outlive_socket``).
        self._turns: set[asyncio.Task[None]] = set()
        self._turns_changed = asyncio.Event()
        self._failures: deque[_Failure] = deque()
        self._per_key: Counter[str] = Counter()
        #: Sockets closed with 4029 because their key had its limit open already.
        self.refused_too_many = 0
        #: Actions answered with ``invalid_json`` under ``refuse_actions``.
        self.actions_refused = 0
        #: Messages and actions answered with ``rate_limit_exceeded``.
        self.rate_limited = 0
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
        turns = list(self._turns)  # those that outlived their sockets
        for task in turns:
            task.cancel()
        await asyncio.gather(*turns, return_exceptions=True)

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

    def _authenticated(self, connection: _Connection) -> None:
        """``connection`` authenticated: from now on it counts against its key's limit."""
        self.peak_authenticated = max(self.peak_authenticated, self.authenticated)

    @property
    def authenticated(self) -> int:
        """Open sockets that have authenticated: what the key's limit counts (``count_before_auth`` aside)."""
        return sum(1 for connection in self._live if connection.authenticated)

    async def wait_for_connections(self, count: int) -> None:
        """Wait until exactly ``count`` sockets are open (a server notices a close a moment after the client)."""
        await self.wait_until(lambda: len(self._live) == count)

    async def wait_until(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()`` holds, checked on every socket's open and close (``accepted``, ``connections``)."""
        async with self._changed:
            await self._changed.wait_for(ready)

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

    def step_turns(self) -> None:
        """Let every turn held by :meth:`pause_turns` send its next ``text_delta``, then hold it again: a test
        streams a reply one piece at a time (everything up to that piece goes out with it)."""
        if self.turn_gate.is_set():
            return
        self.turn_gate.set()  # wakes the turns waiting now; clearing at once holds them at their next piece
        self.turn_gate.clear()

    def fail_next_turn(self, code: str = "internal_error", after_deltas: int = 3) -> None:
        """Make the next turn (of any socket) stream ``after_deltas`` ``text_delta`` frames of its reply, then
        ``error {code}`` (and ``response_complete`` only with ``error_completes``). Calls queue: two calls fail
        the next two turns. The session changes as the whole reply would (its tools ran, then it failed)."""
        if after_deltas < 0:
            raise ValueError("after_deltas must be >= 0")
        self._failures.append(_Failure(code, after_deltas))

    @property
    def running_turns(self) -> int:
        """Turns still running, including those whose socket has closed (``turns_outlive_socket``)."""
        return len(self._turns)

    async def wait_for_turns(self, count: int) -> None:
        """Wait until exactly ``count`` turns run (e.g. 0: a turn that outlived its socket has ended)."""
        while len(self._turns) != count:
            self._turns_changed.clear()
            await self._turns_changed.wait()

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
                self.accepted += 1
                self.peak_connections = max(self.peak_connections, len(self._live))
            else:
                self._live.discard(connection)
            self._changed.notify_all()

    def _track_turn(self, task: asyncio.Task[None]) -> None:
        self._turns.add(task)
        self._turns_changed.set()
        task.add_done_callback(self._turn_done)

    def _turn_done(self, task: asyncio.Task[None]) -> None:
        self._turns.discard(task)
        self._turns_changed.set()

    def _take_failure(self) -> _Failure | None:
        return self._failures.popleft() if self._failures else None

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's command-line flags, shared by ``python -m chat.sandbox.server``, ``manage.py
    vizochok_sandbox`` and ``python -m bench.sandbox``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)")
    parser.add_argument("--pace", type=float, default=40.0, help="text_delta frames per second; 0 = unpaced")
    parser.add_argument("--auth-timeout", type=float, default=10.0, help="seconds to wait for the auth frame")
    parser.add_argument(
        "--max-connections", type=int, default=3, help="open sockets per API key (default 3, as the API allows)"
    )
    parser.add_argument(
        "--reply-seconds",
        type=float,
        default=0.0,
        help="every reply takes about this long, its text spread evenly over it (default 0: paced by --pace)",
    )
    turns = parser.add_argument_group("turn boundaries", "readings of what the reference leaves open (§6)")
    turns.add_argument(
        "--error-completes", action="store_true", help="an error that ends a turn is followed by response_complete"
    )
    turns.add_argument("--complete-twice", action="store_true", help="every response_complete is sent twice")
    turns.add_argument(
        "--block-after-complete", action="store_true", help="one more text block follows each response_complete"
    )
    turns.add_argument(
        "--repeat-frames", action="store_true", help="every rich frame and every text_end is sent twice in a row"
    )
    turns.add_argument(
        "--late-complete-seconds",
        type=float,
        default=0.0,
        help="response_complete comes this long after the turn's last other frame",
    )
    turns.add_argument(
        "--turns-outlive-socket",
        action="store_true",
        help="a turn whose socket closes runs on (frames dropped) and keeps its conversation busy",
    )
    turns.add_argument(
        "--count-before-auth",
        action="store_true",
        help="every socket counts against the connection limit from its connection, before auth (4029 at once)",
    )
    turns.add_argument(
        "--restored-items",
        choices=RESTORED_ITEMS,
        default="cart",
        help="session_restored's selected_items: whole cart lines with a total (default), bare SKUs, or "
        "{sku, quantity} without a total",
    )
    turns.add_argument(
        "--resume-in-auth",
        choices=RESUME_IN_AUTH,
        default="restores",
        help="what a conversation_id in auth does: restores it (default), is ignored (a message naming it continues "
        "it), or is refused with invalid_json",
    )
    turns.add_argument(
        "--no-json-pongs",
        dest="json_pongs",
        action="store_false",
        help="a client's JSON ping is never answered (protocol pings still are)",
    )
    turns.add_argument(
        "--pings-count",
        action="store_true",
        help="a client's JSON ping counts against the per-socket message window",
    )
    turns.add_argument(
        "--ui-shapes",
        choices=UI_SHAPES,
        default="objects",
        help="quick replies, checklist items and cards as objects (default) or as bare strings under other names",
    )
    turns.add_argument(
        "--refuse-actions",
        action="store_true",
        help="every action frame is answered with invalid_json (the real action schema differs)",
    )
    turns.add_argument(
        "--replay-history",
        action="store_true",
        help="after session_restored, an earlier reply is replayed before anything is sent",
    )
    turns.add_argument(
        "--restored-without-id",
        action="store_true",
        help="session_restored does not repeat the conversation id named in auth",
    )


def config_from_options(options: Mapping[str, Any], **fields: Any) -> SandboxConfig:
    """A config from parsed :func:`add_arguments` options (plus ``fields``); ValueError names a bad value."""
    if options["pace"] < 0 or options["auth_timeout"] <= 0 or options["max_connections"] < 1:
        raise ValueError("--pace must be >= 0, --auth-timeout > 0 and --max-connections >= 1")
    if not options.get("reply_seconds", 0.0) >= 0:
        raise ValueError("--reply-seconds must be >= 0")
    if not options["late_complete_seconds"] >= 0:
        raise ValueError("--late-complete-seconds must be >= 0")
    return SandboxConfig(
        tokens_per_second=options["pace"],
        reply_seconds=options.get("reply_seconds", 0.0),
        auth_timeout=options["auth_timeout"],
        max_connections_per_key=options["max_connections"],
        error_completes=options["error_completes"],
        complete_twice=options["complete_twice"],
        block_after_complete=options["block_after_complete"],
        repeat_frames=options["repeat_frames"],
        late_complete_seconds=options["late_complete_seconds"],
        turns_outlive_socket=options["turns_outlive_socket"],
        count_before_auth=options["count_before_auth"],
        restored_items=options["restored_items"],
        restored_without_id=options["restored_without_id"],
        replay_history=options["replay_history"],
        refuse_actions=options["refuse_actions"],
        resume_in_auth=options["resume_in_auth"],
        json_pongs=options["json_pongs"],
        pings_count=options["pings_count"],
        ui_shapes=options["ui_shapes"],
        **fields,
    )


def main(
    argv: list[str] | None = None,
    *,
    reply_hook: ReplyHook | None = None,
    description: str = "Run the offline VIZOCHOK sandbox upstream.",
) -> None:
    """``python -m chat.sandbox.server``: the same as the management command, without Django; prints the URL."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_options(vars(args), reply_hook=reply_hook)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_sandbox(args.host, args.port, config, on_ready=lambda url: print(url, flush=True)))


if __name__ == "__main__":
    main()
