"""One conversation's live feed: everything its tabs are sent, in order, each piece with its position.

In the manner of Zulip's event queue, a tab can always say what it has and be sent exactly what it lacks:

* a stored message carries its ``seq`` (``Message.seq``); a tab keeps the highest it has seen;
* streamed text carries its character offset in its bubble (``data-offset``); a tab keeps each bubble's length,
  appends only what lies beyond it and asks for a catch-up when a piece would leave a gap.

So a reload, a second tab or a reconnect mid-reply never shows a piece twice, out of order, or a middle piece
alone. This is the only coalescer on the path: streamed text goes out at most once per ``interval`` per
conversation, and whatever piled up while a frame was being sent goes out joined in the next one.

Pieces are rendered per language, once per language present among the receiving tabs (``Render`` callables run
under that language; plain strings and text deltas are the same in every language). With a channel layer that
spans processes the group gets every language's rendering, and the live text is mirrored into Redis
(:mod:`chat.feed.live`) so a tab that reconnects to another process catches up from there.

The turn state every page follows (``data-item="turn-state"``: busy or ready) is rendered here and nowhere else:
every tab hears it through a feed (:meth:`ConversationFeed.tell`, on the runner's ``start`` and ``done``,
``chat.turns.states``), and one tab's own answer (a catch-up, a refusal) carries :func:`turn_state`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from django.conf import settings
from django.utils import translation

from chat.feed.live import LiveText
from chat.feed.tabs import LocalTabs, spans_processes
from chat.ops.process import PROCESS_ID
from chat.presentation import rendering

logger = logging.getLogger("chat.feed")

#: A streamed bubble shorter than this shows each line formatted as soon as it is finished (``_reformat_due``).
WHOLE_ALWAYS_BELOW = 2048

#: Renders a fragment under the active language.
Render: TypeAlias = Callable[[], str]


@dataclass(frozen=True, slots=True)
class Delta:
    """Streamed text: ``text`` starts at character ``offset`` of ``bubble``, whose text so far is ``whole`` (kept
    only for a piece that is shown whole: the first one, or one that finishes a line)."""

    bubble: str
    offset: int
    text: str
    whole: str | None = None

    def html(self) -> str:
        return rendering.text_delta(self.bubble, self.text, offset=self.offset, whole=self.whole)


@dataclass(frozen=True, slots=True)
class Place:
    """The turn's place in the line (1 = next) and its estimate while it waits; place 0: out of the line. Mirrored
    like the live text (:mod:`chat.feed.live`), so a tab catching up in another process is told it at once."""

    place: int
    seconds: float

    def html(self) -> str:
        return rendering.queue_place(self.place, self.seconds)


Piece: TypeAlias = str | Delta | Place | Render

#: A conversation's turn state as its pages know it.
TurnState: TypeAlias = Literal["busy", "ready"]


def turn_state(busy: bool) -> str:
    """The turn state for one tab's own answer (its catch-up, a refusal of what it sent), in the active language."""
    return rendering.state("busy" if busy else "ready")


#: What every tab is told when a turn starts, and when it is over (its status line cleared first).
_TOLD: dict[TurnState, tuple[Render, ...]] = {
    "busy": (functools.partial(rendering.state, "busy"),),
    "ready": (functools.partial(rendering.status, None), functools.partial(rendering.state, "ready")),
}


def languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def render(pieces: Iterable[Piece], language: str) -> str:
    """The pieces as one frame for a tab in ``language``."""
    with translation.override(language):
        return _joined(pieces)


def _joined(pieces: Iterable[Piece]) -> str:
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        elif isinstance(piece, (Delta, Place)):
            out.append(piece.html())
        else:
            out.append(piece())
    return "".join(out)


def render_all(pieces: list[Piece], wanted: Iterable[str]) -> dict[str, str]:
    """One rendering per language; computed once, with no language switch, when no piece depends on it (streamed
    text: the hot path)."""
    wanted = list(dict.fromkeys(wanted))
    if all(isinstance(piece, (str, Delta)) for piece in pieces):
        return dict.fromkeys(wanted, _joined(pieces))
    return {language: render(pieces, language) for language in wanted}


class ConversationFeed:
    def __init__(
        self, group: str, tabs: LocalTabs, layer: Any, *, interval: float, live: LiveText | None = None
    ) -> None:
        self._group = group
        self._tabs = tabs
        self._layer = layer
        self._remote = spans_processes(layer)
        self._live = live if self._remote else None
        self._interval = interval
        self._pending: list[Piece] = []
        self._sender: asyncio.Task[None] | None = None
        # The bubble being streamed: its whole text so far and how much of it went out as deltas.
        self._bubble: str | None = None
        self._parts: list[str] = []
        #: The part of ``_parts`` not sent yet: a flush joins only this, not the whole bubble (the hot path).
        self._unsent: list[str] = []
        self._length = 0
        self._sent = 0
        #: The bubble's length when it was last shown whole (see :meth:`_reformat_due`).
        self._shown_whole = 0
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    # --- streamed text -----------------------------------------------------------------------------------------

    def begin(self, bubble: str) -> None:
        self.end()
        self._bubble = bubble

    def add(self, delta: str) -> None:
        """Streamed text of the current bubble: out at once if the last frame is ``interval`` old, else soon."""
        if not delta or self._bubble is None:
            return
        self._parts.append(delta)
        self._unsent.append(delta)
        self._length += len(delta)
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_flush + self._interval - loop.time()
        if wait <= 0:
            self._flush_text()
        else:
            self._timer = loop.call_later(wait, self._flush_text)

    def end(self) -> str:
        """Close the bubble and return its whole text; text not yet sent is not (the stored reply replaces it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text = "".join(self._parts)
        had = self._bubble is not None
        self._bubble, self._parts, self._unsent, self._length, self._sent = None, [], [], 0, 0
        self._shown_whole = 0
        if had and self._live is not None:
            self._pending.append(_CLEAR_LIVE)
            self._kick()
        return text

    def live(self) -> tuple[str, str] | None:
        """The bubble being streamed and its text so far (unsent text included), for a tab that catches up."""
        if self._bubble is None or not self._length:
            return None
        return self._bubble, "".join(self._parts)

    def _flush_text(self) -> None:
        self._timer = None
        if self._bubble is None or self._sent >= self._length:
            return
        text, self._unsent = "".join(self._unsent), []
        whole = None
        if self._sent == 0 or ("\n" in text and self._reformat_due()):  # the first piece, or one finishing a line
            whole = "".join(self._parts)
            self._parts = [whole]
            self._shown_whole = self._length
        self._pending.append(Delta(self._bubble, self._sent, text, whole))
        self._sent = self._length
        self._last_flush = asyncio.get_running_loop().time()
        self._kick()

    def _reformat_due(self) -> bool:
        """Whether a piece that finishes a line shows the bubble whole (its finished lines formatted) or goes out as
        text at its offset (``msg__tail`` keeps line breaks), to be formatted by a later whole showing.

        A short bubble shows every finished line formatted at once. Past :data:`WHOLE_ALWAYS_BELOW` characters, a
        whole showing waits until the bubble grew by an eighth since the last one: what goes out stays a small
        multiple of the reply, even from an upstream that sends one line break per frame.
        """
        grown = self._length - self._shown_whole
        return self._length < WHOLE_ALWAYS_BELOW or grown * 8 >= self._length

    # --- everything else -----------------------------------------------------------------------------------------

    def put(self, piece: Piece) -> None:
        """A fragment for every tab, after any streamed text that came before it."""
        if isinstance(piece, str) and not piece:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._flush_text()
        self._pending.append(piece)
        self._kick()

    def tell(self, state: TurnState) -> None:
        """Every tab's turn state, after everything put before it: the only way a turn's busy or ready goes out."""
        for piece in _TOLD[state]:
            self.put(piece)

    def _kick(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            pieces = [piece for piece in batch if piece is not _CLEAR_LIVE]
            wanted: Collection[str] = self._tabs.languages(self._group)
            if self._remote:
                wanted = languages()
            if pieces and wanted:
                html = render_all(pieces, wanted)
                await self._tabs.deliver(self._group, html)
            if not self._remote:
                continue
            try:
                await self._mirror(batch)
                if pieces:
                    message = {"type": "chat.fragment", "html": html, "origin": PROCESS_ID}
                    await self._layer.group_send(self._group, message)
            except Exception:
                # A full or broken layer must not kill the turn: the database still has everything.
                logger.exception("could not deliver a fragment to %s", self._group)

    async def _mirror(self, batch: list[Piece]) -> None:
        """Keep the live text and the place in line in Redis in step with what went out, for catch-ups in other
        processes."""
        if self._live is None:
            return
        for piece in batch:
            if piece is _CLEAR_LIVE:
                await self._live.clear(self._group)
            elif isinstance(piece, Delta):
                await self._live.write(self._group, piece.bubble, piece.offset, piece.text)
            elif isinstance(piece, Place):
                await self._live.write_place(self._group, piece.place, piece.seconds)

    async def drain(self) -> None:
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)


def _clear_live() -> str:
    return ""


#: A marker in the queue: the live bubble ended (its mirror is cleared in order with the deltas before it).
_CLEAR_LIVE: Render = _clear_live
