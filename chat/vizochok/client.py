"""The async upstream client: one authenticated VIZOCHOK conversation over one WebSocket.

:func:`open_session` connects, sends ``auth`` first (reference §2, §4.1), waits for ``auth_ok`` and for
``conversation_started``/``session_restored``, retrying transient failures on the SDK's backoff schedule (§12).
The returned :class:`UpstreamSession` owns two background tasks:

* a reader that parses every frame with :func:`~chat.vizochok.messages.parse_server` into a queue, answers the
  server's JSON ``ping`` with ``pong`` (§11) and logs and skips malformed, binary or oversize frames, so one bad
  frame never costs the user the conversation;
* a keepalive that sends JSON ``ping`` every ``ping_interval``, with a WebSocket protocol ping beside it, and gives
  the connection up when nothing at all arrives within ``pong_timeout`` afterwards. Any frame counts, not only
  ``pong``, and so does the protocol pong: the reference leaves open whether the server answers JSON pings and
  whether its own pings are JSON (§22 item 10), while every WebSocket peer answers a protocol ping.

The relay consumes frames either as a stream (:meth:`UpstreamSession.events`) or per turn
(:meth:`UpstreamSession.turn`). This module imports nothing from Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from websockets.protocol import State

from chat.compat.websockets_frames import DirectTextConnection, connection_class

from .backoff import Backoff
from .errors import (
    ABNORMAL_CLOSE_CODE,
    CONNECTION_LIMIT_CLOSE_CODE,
    ConnectionLimited,
    HandshakeTimeout,
    InvalidUpstreamURL,
    StartRefused,
    TurnTimeout,
    UpstreamClosed,
    UpstreamError,
    UpstreamUnavailable,
    closed_error,
    refused_error,
    should_retry,
)
from .messages import (
    MAX_SERVER_FRAME_BYTES,
    TURN_ENDING,
    Auth,
    AuthOk,
    ClientMessage,
    ConversationStarted,
    ErrorMessage,
    IngredientChecklist,
    MalformedFrame,
    Ping,
    Pong,
    QuickReplies,
    ResponseComplete,
    ServerMessage,
    SessionRestored,
    TextEnd,
    UserMessage,
    check_size,
    parse_server,
    to_json,
)
from .quiet_log import quiet_websockets_logger

logger = logging.getLogger("chat.vizochok.client")

#: websockets' own ceiling for one incoming message. Above what ``parse_server`` reads (``MAX_SERVER_FRAME_BYTES``)
#: so an oversize frame is read and refused by it (logged, counted, skipped) instead of websockets closing the
#: socket with 1009.
READ_LIMIT = 4 * MAX_SERVER_FRAME_BYTES  # 1 MiB
#: How much of a bad frame a log line shows.
EXCERPT_CHARS = 200

StartFrame: TypeAlias = ConversationStarted | SessionRestored
#: ``on_retry(attempt, delay, exc)``; may be a plain function or a coroutine function.
RetryHook: TypeAlias = Callable[[int, float, UpstreamError], object]
Sleep: TypeAlias = Callable[[float], Awaitable[object]]

#: websockets' own logger gets this name; see :class:`~chat.vizochok.quiet_log.QuietFrames`.
WEBSOCKETS_LOGGER = "chat.vizochok.client.websockets"

#: Frames that only end something: one that comes before anything of a turn belongs to an earlier turn.
_ENDS_ONLY = (ResponseComplete, TextEnd)
#: What a resumed session may send before anything was asked and still mean for the next turn: the "pending tools"
#: of ``session_restored`` (reference §13), choices the shopper has not answered. Anything else then (a replay of
#: past messages, §22 item 6) belongs to no turn.
_PENDING = (QuickReplies, IngredientChecklist)

_PING = to_json(Ping())
_PONG = to_json(Pong())


@dataclass(frozen=True, slots=True, repr=False)
class UpstreamConfig:
    """Where and as whom to connect, and every timeout (seconds). Safe to log: the repr masks the token."""

    url: str
    token: str
    store_id: str | None = None
    user_id: str | None = None
    #: Deadline for the whole handshake once connected: ``auth`` sent, ``auth_ok`` and the start frame received
    #: (the server's own is 10 s). A silent upstream is given up after this long, not retried.
    auth_timeout: float = 10.0
    #: Deadline for a whole turn, send to ``response_complete``; the agent itself gives up after 120 s.
    turn_timeout: float | None = 120.0
    #: Seconds between JSON pings; ``None`` or 0 disables the keepalive.
    ping_interval: float | None = 30.0
    #: How long after a ping silence means the upstream is gone.
    pong_timeout: float = 60.0
    #: TCP connect plus HTTP upgrade.
    open_timeout: float = 10.0
    #: How long a close waits for the upstream's close frame before dropping the TCP connection.
    close_timeout: float = 5.0
    #: After an ``error`` ends a turn, how long its ``response_complete`` may still come (the reference leaves open
    #: whether one follows, §6): the socket serves no other turn before it came or this passed.
    error_grace: float = 1.0
    #: Quiet the socket must have had before it serves the next turn: a frame the upstream sends right after
    #: ``response_complete`` (a repeated one, a late block) arrives within it and is set apart, not read as the
    #: next turn's reply. Only turns that follow each other this closely wait at all.
    settle_grace: float = 0.03
    #: HTTP(S)/SOCKS proxy URL, ``True`` for the environment's proxy settings, ``None`` to connect directly.
    #: Direct by default: a server-side relay should not route its API key through whatever proxy is in its env.
    proxy: str | Literal[True] | None = None
    #: Offer permessage-deflate. Off by default: the protocol's frames are small JSON (a token, a status), where
    #: compressing and inflating each one costs the relay more CPU than the bytes it saves on a server's link.
    deflate: bool = False

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("ws", "wss"):
            raise InvalidUpstreamURL(f"upstream URL must be ws:// or wss://, not {self.url!r}")

    def __repr__(self) -> str:
        return (
            f"UpstreamConfig(url={self.url!r}, token='***', store_id={self.store_id!r}, user_id={self.user_id!r}, "
            f"auth_timeout={self.auth_timeout!r}, turn_timeout={self.turn_timeout!r}, "
            f"ping_interval={self.ping_interval!r}, pong_timeout={self.pong_timeout!r}, "
            f"open_timeout={self.open_timeout!r}, close_timeout={self.close_timeout!r}, "
            f"error_grace={self.error_grace!r}, settle_grace={self.settle_grace!r}, deflate={self.deflate!r})"
        )

    def auth(self, conversation_id: str | None = None) -> Auth:
        """The first frame; ``conversation_id`` asks to resume a live session (reference §4.1, §13)."""
        return Auth(token=self.token, store_id=self.store_id, user_id=self.user_id, conversation_id=conversation_id)


_WEBSOCKETS_LOG = quiet_websockets_logger(WEBSOCKETS_LOGGER)


class _Expired:
    """Queue item put by a turn's deadline timer: one timer per turn instead of a timeout per awaited frame."""

    __slots__ = ()


class _End:
    """Queue sentinel put once the reader stops; ``error`` is ``None`` after a close we asked for."""

    __slots__ = ("error",)

    def __init__(self, error: UpstreamClosed | None) -> None:
        self.error = error


def _parse(raw: str | bytes) -> ServerMessage:
    """``parse_server`` plus the one rule it cannot know: the protocol is text frames only."""
    if isinstance(raw, bytes):
        raise MalformedFrame(f"binary frame of {len(raw)} bytes")
    return parse_server(raw)


def _log_bad(raw: str | bytes, exc: MalformedFrame) -> None:
    excerpt = raw[:EXCERPT_CHARS]
    logger.warning("skipping a malformed upstream frame (%s): %r", exc, excerpt)


def _closed_from(exc: ConnectionClosed) -> UpstreamClosed:
    """Map a websockets close to our exceptions by the code the upstream sent (1006 when it sent none)."""
    if exc.rcvd is None:
        return closed_error(ABNORMAL_CLOSE_CODE, "")
    return closed_error(exc.rcvd.code, exc.rcvd.reason)


def _copy(error: UpstreamClosed) -> UpstreamClosed:
    """A fresh instance per raise, so repeated raises do not chain tracebacks onto one object."""
    return type(error)(error.code, error.reason)


class UpstreamSession:
    """An open conversation. Use one consumer at a time (``events()`` or ``turn()``), from one event loop."""

    def __init__(self, ws: ClientConnection, config: UpstreamConfig, start: StartFrame, *, bad_frames: int = 0) -> None:
        self.config = config
        self.start: StartFrame = start
        self.conversation_id: str = start.conversation_id
        self.restored: bool = isinstance(start, SessionRestored)
        #: Frames skipped as malformed, binary or oversize since the connection opened (handshake included).
        self.bad_frames = bad_frames
        self._ws = ws
        self._queue: asyncio.Queue[ServerMessage | _End | _Expired] = asyncio.Queue()
        #: The running turn's deadline marker; a marker of an earlier turn left in the queue is skipped.
        self._deadline: _Expired | None = None
        self._end: _End | None = None
        self._closing = False
        self._local_close: UpstreamClosed | None = None
        self._send_lock = asyncio.Lock()
        self._heard = asyncio.Event()
        self._pongs: set[asyncio.Task[None]] = set()
        #: Loop time of the last frame received (keepalive frames excepted): the settle before a turn counts from it.
        self._last_frame = 0.0
        #: The last turn ended with an ``error`` at this loop time and its ``response_complete`` has not come yet.
        self._error_open_since: float | None = None
        #: Turns served; frames waiting before the first one are the resume's (pending choices), not strays.
        self._turns = 0
        #: Frames that belonged to no turn (after one ended, before the next began): counted and handed to
        #: ``on_stray``, never yielded as a turn's.
        self.strays = 0
        self.on_stray: Callable[[ServerMessage, str], object] | None = None
        #: Loop time the connection ended (closed by either side), for the reconnect schedule.
        self.ended_at: float | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    def _run(self) -> None:
        """Start the background tasks; called once by :func:`open_session` after the handshake."""
        if isinstance(self.start, SessionRestored):
            # The start frame counts for the quiet a first turn waits for: a replay of the history a moment after
            # it (§22 item 6) is then set apart, not read as the turn's reply.
            self._last_frame = asyncio.get_running_loop().time()
        self._reader = asyncio.create_task(self._read_loop(), name=f"vizochok-reader-{self.conversation_id}")
        if isinstance(self._ws, DirectTextConnection):
            self._ws.on_text = self._received
        interval = self.config.ping_interval
        if interval:
            self._keepalive = asyncio.create_task(
                self._keepalive_loop(interval), name=f"vizochok-keepalive-{self.conversation_id}"
            )

    # Public API -----------------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the connection ended (frames may still wait in the queue)."""
        return self._closing or self._end is not None

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    def message(self, text: str) -> UserMessage:
        """A ``message`` frame for this conversation (the id goes in every message, reference §13)."""
        return UserMessage(text=text, conversation_id=self.conversation_id)

    async def send(self, frame: ClientMessage) -> None:
        """Send one frame. :class:`FrameTooLarge` is raised before anything is written (reference §10.2)."""
        self._raise_if_closed()
        await self._send_text(check_size(to_json(frame)))

    async def events(self) -> AsyncIterator[ServerMessage]:
        """Every frame after the start frame, in order, except keepalive ``ping``/``pong`` and bad frames.

        Ends after a :meth:`close` (once already-received frames are yielded); raises :class:`UpstreamClosed`
        (or a subclass, by close code) when the upstream closes or drops the connection.
        """
        while (frame := await self._next()) is not None:
            yield frame

    async def turn(self, frame: ClientMessage) -> AsyncIterator[ServerMessage]:
        """Send ``frame``, then yield frames up to and including the one that ends the turn.

        Turn boundaries hold whatever the upstream does at them (reference §6 leaves open whether
        ``response_complete`` follows an ``error``): before sending, the socket settles (see :meth:`_settle`) and
        frames that arrived between turns are set apart as strays; a ``response_complete`` or ``text_end`` before
        any frame of this turn is a stray too (a repeated one), since no turn ends before it began. A resumed session
        settles before its first turn too: the pending choices it re-sent are yielded first, anything else it sent
        unasked (a replay of past messages) is set apart.

        The deadline covers the whole turn, not the gap between frames: an upstream that trickles frames forever
        still times out. After :class:`TurnTimeout` the rest of that turn may still arrive, so a caller should
        close the session rather than start another turn on it.
        """
        timeout = self.config.turn_timeout
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        marker = self._deadline = _Expired()
        timer = None if deadline is None else loop.call_at(deadline, self._queue.put_nowait, marker)
        first_turn = self._turns == 0
        self._turns += 1
        began = False
        try:
            async with asyncio.timeout_at(deadline):
                if not first_turn:
                    await self._settle()
                elif isinstance(self.start, SessionRestored):
                    await self._settle(keep=_PENDING)  # a replay set apart, the pending choices yielded first
                await self.send(frame)
            while True:
                event = await self._next()
                if event is None:
                    return
                if not began and isinstance(event, _ENDS_ONLY):
                    self._set_apart(event, "before the turn's first frame")
                    continue
                began = True
                if isinstance(event, ErrorMessage):
                    self._error_open_since = loop.time()
                elif isinstance(event, ResponseComplete):
                    self._error_open_since = None
                yield event
                if isinstance(event, TURN_ENDING):
                    return
        except TimeoutError:
            raise TurnTimeout(timeout or 0.0) from None
        finally:
            if timer is not None:
                timer.cancel()
            if self._deadline is marker:
                self._deadline = None

    async def _settle(self, keep: tuple[type[ServerMessage], ...] = ()) -> None:
        """Make the socket ready for a new turn: nothing of the previous one may be read as this one's.

        After an ``error``, wait up to ``error_grace`` for its ``response_complete`` (consumed quietly). Then wait
        until the socket has been quiet for ``settle_grace``, and set apart whatever arrived meanwhile, except frames
        of the ``keep`` types, left in order for the turn.
        """
        loop = asyncio.get_running_loop()
        if self._error_open_since is not None:
            until = self._error_open_since + self.config.error_grace
            while self._error_open_since is not None and (left := until - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        item = await self._queue.get()
                except TimeoutError:
                    break
                if isinstance(item, _End):
                    self._queue.put_nowait(item)
                    return
                if isinstance(item, _Expired):
                    continue
                if isinstance(item, ResponseComplete):
                    self._error_open_since = None  # the erroring turn's own end: not a stray
                else:
                    self._set_apart(item, "after an error, before its response_complete")
            self._error_open_since = None
        # Waiting for the absence of frames: there is no event to await, only a quiet period to let pass.
        while (quiet := self._last_frame + self.config.settle_grace - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(quiet)
        waiting = []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        ends = []
        for item in waiting:
            if isinstance(item, _End):
                ends.append(item)
            elif isinstance(item, keep):
                self._queue.put_nowait(item)
            elif not isinstance(item, _Expired):
                self._set_apart(item, "between turns" if not keep else "before the resumed session's first turn")
        for end in ends:
            self._queue.put_nowait(end)

    def _set_apart(self, frame: ServerMessage, where: str) -> None:
        self.strays += 1
        logger.info("upstream frame %s %s in conversation %s: set apart", frame.type, where, self.conversation_id)
        if self.on_stray is not None:
            self.on_stray(frame, where)

    async def close(self) -> None:
        """Close with 1000 and stop the background tasks. Idempotent; never raises for a dead connection."""
        if self._closing:
            return
        self._closing = True
        self._stop_keepalive()
        try:
            await self._ws.close()
        except Exception:  # the connection is being discarded either way
            logger.debug("error while closing the upstream connection", exc_info=True)
        except BaseException:  # cancelled mid-close: drop the socket now, a second close() would be a no-op
            self._ws.transport.abort()
            self._finish(None)
            raise
        tasks = {task for task in (self._reader, self._keepalive) if task is not None and not task.done()}
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.close_timeout)
            for task in tasks:
                task.cancel()
        self._finish(None)

    async def __aenter__(self) -> UpstreamSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<UpstreamSession {self.conversation_id} {state} restored={self.restored}>"

    # Reading --------------------------------------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether a frame is already queued: reading the next one will not wait on the network."""
        return not self._queue.empty()

    def completed(self) -> bool:
        """Whether a ``response_complete`` has arrived and waits in the queue: the upstream is done with this socket's
        turn, whatever the reader has still to go through. Scans the queued frames (a few; call it per write, not
        per frame)."""
        # asyncio.Queue keeps its items in the private deque ``_queue``; reading it is the only way to look without
        # taking. Fenced here: the rest of the client only puts and gets.
        queued: Any = getattr(self._queue, "_queue", ())
        return any(isinstance(item, ResponseComplete) for item in queued)

    async def _next(self) -> ServerMessage | None:
        """The next queued frame; ``None`` after a clean close; raises the close error after an upstream close.

        Raises ``TimeoutError`` when the running turn's deadline passes.
        """
        item = await self._queue.get()
        while isinstance(item, _Expired):
            if item is self._deadline:
                raise TimeoutError
            item = await self._queue.get()  # an earlier turn's marker
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later call sees the end too
            if item.error is not None:
                raise _copy(item.error)
            return None
        return item

    async def _read_loop(self) -> None:
        error: UpstreamClosed | None = None
        try:
            async for raw in self._ws:
                self._received(raw)
        except (ConnectionClosed, UpstreamClosed):
            pass  # the close code is read in _end_error, the same way for clean and abrupt ends
        except Exception:
            logger.exception("upstream reader failed; dropping the connection")
            self._ws.transport.abort()
            error = UpstreamClosed(ABNORMAL_CLOSE_CODE, "client reader failed")
        finally:
            self._finish(error if error is not None else self._end_error())

    def _received(self, raw: str | bytes) -> None:
        """One frame from the upstream, in the order it came: queued for the turn, or a ping answered."""
        self._heard.set()
        try:
            frame = _parse(raw)
        except MalformedFrame as exc:
            self.bad_frames += 1
            _log_bad(raw, exc)
            return
        if isinstance(frame, Ping):
            self._pongs.add(pong := asyncio.get_running_loop().create_task(self._pong()))
            pong.add_done_callback(self._pongs.discard)
        elif not isinstance(frame, Pong):
            self._last_frame = asyncio.get_running_loop().time()
            self._queue.put_nowait(frame)

    async def _pong(self) -> None:
        with contextlib.suppress(UpstreamClosed, ConnectionClosed):  # the reader sees the end and says why
            await self._send_text(_PONG)

    def _end_error(self) -> UpstreamClosed | None:
        """Why the connection ended: nothing if we closed it, else what the upstream (or the keepalive) said."""
        if self._closing:
            return None
        if self._local_close is not None:
            return self._local_close
        code = self._ws.close_code
        return closed_error(code if code is not None else ABNORMAL_CLOSE_CODE, self._ws.close_reason or "")

    def _finish(self, error: UpstreamClosed | None) -> None:
        if self._end is not None:
            return
        self._end = _End(error)
        self.ended_at = asyncio.get_running_loop().time()
        self._queue.put_nowait(self._end)
        self._stop_keepalive()
        if error is None:
            logger.debug("upstream session %s closed", self.conversation_id)
        else:
            logger.info("upstream session %s ended: %s", self.conversation_id, error)

    # Writing and keepalive ------------------------------------------------------------------------------------

    def _raise_if_closed(self) -> None:
        if self._end is not None and self._end.error is not None:
            raise _copy(self._end.error)
        if self.closed:
            raise UpstreamClosed(1000, "session closed by the client")

    async def _send_text(self, text: str) -> None:
        try:
            async with self._send_lock:
                await self._ws.send(text)
        except ConnectionClosed as exc:
            raise (self._end_error() or _closed_from(exc)) from None

    def _stop_keepalive(self) -> None:
        task = self._keepalive
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def _keepalive_loop(self, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                self._heard.clear()
                await self._send_text(_PING)
                # A protocol ping too: every WebSocket peer answers it (RFC 6455 §5.5.2), whether or not the API
                # answers a JSON ping or sends JSON pings of its own (reference §22 item 10).
                asyncio.ensure_future(await self._ws.ping()).add_done_callback(self._ponged)
                try:
                    async with asyncio.timeout(self.config.pong_timeout):
                        await self._heard.wait()
                except TimeoutError:
                    await self._give_up_silent()
                    return
        except (UpstreamClosed, ConnectionClosed):  # the socket ended meanwhile: the reader says how
            return

    def _ponged(self, pong: asyncio.Future[float]) -> None:
        if not pong.cancelled() and pong.exception() is None:
            self._heard.set()

    async def _give_up_silent(self) -> None:
        logger.warning(
            "upstream session %s: nothing received within %g s of a ping; closing",
            self.conversation_id,
            self.config.pong_timeout,
        )
        self._local_close = UpstreamClosed(1011, "keepalive timeout")
        # Dropped, not closed: a peer that answers nothing will not answer a close either, and the close handshake
        # would hold the turn for close_timeout more.
        self._ws.transport.abort()


# Opening --------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Resume:
    """What a process has learnt of where the upstream reads a conversation's id (reference §4.1: the mobile guide
    puts it in ``auth``; P1 and P2 only in ``message``; §22 item 7: whether ``auth`` refuses a field it does not
    know). One per process, shared by its sessions: learnt once, not per conversation."""

    #: Name the conversation in ``auth``. Off once such an ``auth`` was refused as ``invalid_json`` (a strict
    #: schema): the id then goes only where P1 and P2 put it, in each ``message``.
    in_auth: bool = True
    #: A ``conversation_started`` in answer to an ``auth`` naming a conversation means that one has ended (its
    #: 1-hour TTL ran out). Off once the upstream started a new one for a conversation active minutes before, or
    #: refused the id in ``auth``: a new id at the start then means only that ``auth`` does not resume.
    auth_restores: bool = True


async def open_session(
    config: UpstreamConfig,
    conversation_id: str | None = None,
    *,
    resume: Resume | None = None,
    backoff: Backoff | None = None,
    sleep: Sleep = asyncio.sleep,
    on_retry: RetryHook | None = None,
    dropped: float | None = None,
    ahead: OpenedAhead | None = None,
) -> UpstreamSession:
    """Open a session, resuming ``conversation_id`` when given, retrying per :func:`should_retry`.

    The first attempt is immediate; each retry waits the next of ``backoff.delays()`` (so at most
    ``1 + backoff.max_attempts`` attempts), calling ``on_retry(attempt, delay, exc)`` before sleeping. Auth
    rejections and daily limits are raised at once; otherwise the last error is raised when delays run out.

    ``dropped`` (seconds since an earlier connection of this conversation dropped) makes this a reconnect: its first
    attempt, too, waits the schedule's first step (reference §12), less the time already gone since the drop.

    ``ahead``: a socket :func:`open_ahead` opened; if it is still open, the first attempt authenticates on it
    instead of opening one, and its failure is judged like any first attempt's.

    ``resume``: the process's :class:`Resume`. ``conversation_id`` goes in ``auth`` while ``resume.in_auth``; an
    ``auth`` refused as ``invalid_json`` for carrying it is tried again at once without it, and ``resume`` learns so.
    """
    schedule = (backoff or Backoff()).delays()
    if dropped is not None:
        step = next(schedule, None)
        if step is not None and step > dropped:
            await sleep(step - dropped)
    opened = ahead.ws if ahead is not None and ahead.open else None
    named = conversation_id if resume is None or resume.in_auth else None
    attempt = 0
    while True:
        try:
            if opened is not None:
                ws, opened = opened, None
                return await _session_on(ws, config, named)
            return await _open_once(config, named)
        except UpstreamError as exc:
            if named and resume is not None and isinstance(exc, StartRefused) and exc.code == "invalid_json":
                logger.warning("the upstream refused a conversation id in auth: it goes only in messages now")
                resume.in_auth = resume.auth_restores = False
                named = None
                continue
            delay = next(schedule, None) if should_retry(exc) else None
            if delay is None:
                logger.warning("giving up on the upstream after %d attempt(s): %s", attempt + 1, exc)
                raise
            logger.info("upstream not ready (%s); retry %d in %.2f s", exc, attempt + 1, delay)
            if on_retry is not None:
                result = on_retry(attempt, delay, exc)
                if inspect.isawaitable(result):
                    await result
            await sleep(delay)
            attempt += 1


class OpenedAhead:
    """A socket :func:`open_ahead` opened, not authenticated yet: pass it to :func:`open_session`, or close it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @property
    def open(self) -> bool:
        return self.ws.state is State.OPEN

    @property
    def refused_by_limit(self) -> bool:
        """Closed with 4029: the key's limit refused it."""
        return self.ws.close_code == CONNECTION_LIMIT_CLOSE_CODE

    async def close(self) -> None:
        """Close it unused (nothing to report if that fails: the socket is gone either way)."""
        with contextlib.suppress(Exception):
            await self.ws.close()


async def open_ahead(config: UpstreamConfig) -> OpenedAhead:
    """Open a socket (TCP, TLS, the upgrade) without authenticating, for a turn about to be given a slot.

    The API counts a socket against the key's 3 from its ``auth``, where the key arrives (reference §3, §4.1): a
    socket opened while the turn still waits costs the key nothing, and once the slot is granted only ``auth`` is
    left to do. The API closes it with 4001 if no ``auth`` follows within 10 s. Pass it to :func:`open_session`.
    """
    return OpenedAhead(await _connect(config))


async def _open_once(config: UpstreamConfig, conversation_id: str | None) -> UpstreamSession:
    return await _session_on(await _connect(config), config, conversation_id)


async def _session_on(ws: ClientConnection, config: UpstreamConfig, conversation_id: str | None) -> UpstreamSession:
    try:
        start, bad_frames = await _handshake(ws, config, conversation_id)
    except BaseException as exc:
        await _discard(ws, exc)
        raise
    if conversation_id and start.conversation_id != conversation_id:
        logger.info("could not resume %s; the upstream started %s", conversation_id, start.conversation_id)
    session = UpstreamSession(ws, config, start, bad_frames=bad_frames)
    session._run()
    return session


async def _connect(config: UpstreamConfig) -> ClientConnection:
    try:
        return await connect(
            config.url,
            open_timeout=config.open_timeout,
            close_timeout=config.close_timeout,
            # Keepalive is the protocol's JSON ping/pong (reference §11), run by the session itself.
            ping_interval=None,
            max_size=READ_LIMIT,
            compression="deflate" if config.deflate else None,
            create_connection=connection_class(),  # chat/compat: frames straight to the session
            proxy=config.proxy,
            logger=_WEBSOCKETS_LOG,
        )
    except InvalidURI as exc:
        raise InvalidUpstreamURL(str(exc)) from exc
    except TimeoutError as exc:
        # TCP connected (or the SYN went unanswered) but no upgrade within open_timeout: not worth another wait.
        raise HandshakeTimeout(f"cannot open {config.url}: no answer within {config.open_timeout:g} s") from exc
    except (OSError, WebSocketException) as exc:
        raise UpstreamUnavailable(f"cannot open {config.url}: {exc or type(exc).__name__}") from exc


async def _handshake(
    ws: ClientConnection, config: UpstreamConfig, conversation_id: str | None
) -> tuple[StartFrame, int]:
    """Send ``auth``; wait for ``auth_ok``, then for the start frame, all within one ``auth_timeout``.

    Returns the start frame and how many bad frames were skipped. Pings are answered, unexpected frames logged
    and skipped; an ``error`` frame or a close ends the attempt with the matching exception.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.auth_timeout
    authed = False
    bad_frames = 0
    try:
        async with asyncio.timeout_at(deadline):
            await ws.send(to_json(config.auth(conversation_id)))
        while True:
            async with asyncio.timeout_at(deadline):
                raw = await ws.recv()
            try:
                frame = _parse(raw)
            except MalformedFrame as exc:
                bad_frames += 1
                _log_bad(raw, exc)
                continue
            if isinstance(frame, (ConversationStarted, SessionRestored)):
                if not authed:
                    logger.warning("upstream started a conversation without auth_ok")
                if isinstance(frame, SessionRestored) and not frame.conversation_id and conversation_id:
                    frame = replace(frame, conversation_id=conversation_id)  # the one auth named
                return frame, bad_frames
            if isinstance(frame, ErrorMessage):
                raise refused_error(frame)
            if isinstance(frame, AuthOk) and not authed:
                authed = True  # the deadline stays: an auth_ok does not buy a silent upstream another timeout
            elif isinstance(frame, Ping):
                await ws.send(_PONG)
            elif not isinstance(frame, Pong):
                logger.warning("ignoring a %s frame before the conversation started", frame.type)
    except TimeoutError:
        waited = "conversation start" if authed else "auth_ok"
        raise HandshakeTimeout(f"no {waited} within {config.auth_timeout:g} s") from None
    except ConnectionClosed as exc:
        raise _closed_from(exc) from None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A readiness round trip: what to report, and the conversation the upstream started or restored for it."""

    status: str
    conversation_id: str | None = None


async def probe(config: UpstreamConfig, conversation_id: str | None = None) -> ProbeResult:
    """Authenticate and close: ``"ok"`` once ``auth_ok`` came, within ``auth_timeout`` (readiness).

    No retries. The API starts a conversation at ``auth`` (reference §2, step 3) and may count it against the
    user's 20 a day (§13, §22 item 8; with a public key, the whole key's): so the probe waits for the start frame,
    gives back the conversation's id, and a caller names it next time (``conversation_id``) to restore that one
    instead of starting another. Nothing is sent after ``auth``. A close with 4029 means the key already holds its
    sockets: the upstream answered, so it counts as reachable (``"ok (connection limit)"``); so does an ``error``
    after ``auth_ok`` (a daily limit is no reason to take the relay out of service). Raises
    :class:`HandshakeTimeout` for an upstream that accepts the connection but never authenticates, and the usual
    errors for a refused key or an unreachable host.
    """
    ws = await _connect(config)
    authed = False
    try:
        async with asyncio.timeout(config.auth_timeout):
            await ws.send(to_json(config.auth(conversation_id)))
            while True:
                try:
                    frame = _parse(await ws.recv())
                except MalformedFrame:
                    continue
                if isinstance(frame, (ConversationStarted, SessionRestored)):
                    return ProbeResult("ok", frame.conversation_id or conversation_id)
                if isinstance(frame, AuthOk):
                    authed = True
                elif isinstance(frame, ErrorMessage):
                    if authed:
                        return ProbeResult("ok")
                    raise refused_error(frame)
                elif isinstance(frame, Ping):
                    await ws.send(_PONG)
    except TimeoutError:
        if authed:
            return ProbeResult("ok")  # authenticated; the start frame is the upstream's business
        raise HandshakeTimeout(f"no auth_ok within {config.auth_timeout:g} s") from None
    except ConnectionClosed as exc:
        closed = _closed_from(exc)
        if isinstance(closed, ConnectionLimited):
            return ProbeResult("ok (connection limit)")
        if authed:
            return ProbeResult("ok")
        raise closed from None
    finally:
        await _discard(ws, Exception())


async def _discard(ws: ClientConnection, exc: BaseException) -> None:
    """Drop a connection whose handshake failed; abort at once if we are being cancelled."""
    if not isinstance(exc, Exception):
        ws.transport.abort()
        return
    try:
        await ws.close()
    except Exception:
        ws.transport.abort()


__all__ = [
    "READ_LIMIT",
    "Backoff",
    "ProbeResult",
    "Resume",
    "RetryHook",
    "StartFrame",
    "UpstreamConfig",
    "UpstreamSession",
    "open_session",
    "probe",
]
