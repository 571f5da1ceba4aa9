"""The benchmark's replies, plugged into the sandbox through its one seam (``SandboxConfig.reply_hook``).

The text ``bench <tokens> [<tokens per second>]`` gets a fixed reply of that many ``text_delta`` frames, so
``manage.py bench_relay`` chooses the reply length and pace per turn; any other input gets the assistant's reply.
Every delta is stamped with the wall-clock time it leaves the sandbox, so a client on the same host measures each
frame's transit from the upstream, whatever relay and coalescing sit in between.
"""

from __future__ import annotations

import re
import time

from chat.sandbox.assistant import Frame, Session, TextRequest
from chat.sandbox.assistant import Request as TurnRequest
from chat.sandbox.server import Reply
from chat.vizochok.messages import ResponseComplete, Status, TextDelta, TextEnd

_BENCH = re.compile(r"bench (\d{1,5})(?: (\d+(?:\.\d+)?))?")
_BENCH_WORDS = ("milk", "bread", "apples", "cheese", "butter", "eggs", "rice", "tea")

#: A benchmark delta ends in ``@`` and the wall-clock microsecond it was sent, zero-padded: ``milk0@1795…123 ``.
BENCH_STAMP = re.compile(r"@(\d{16}) ")
_BENCH_STAMP_CHARS = 18


def bench_request(request: TurnRequest) -> tuple[int, float | None] | None:
    """``bench <tokens> [<pace>]`` as (tokens, pace or None for the configured pace); None for any other input."""
    match = _BENCH.fullmatch(request.text) if isinstance(request, TextRequest) else None
    if match is None:
        return None
    return int(match[1]), float(match[2]) if match[2] is not None else None


def bench_reply_chars(tokens: int) -> int:
    """The length of a whole stamped benchmark reply of ``tokens`` tokens."""
    return sum(len(delta) + _BENCH_STAMP_CHARS for delta in bench_deltas(tokens))


def bench_deltas(tokens: int) -> list[str]:
    """The deltas of a benchmark reply (one word each, before the stamp)."""
    return [f"{_BENCH_WORDS[i % len(_BENCH_WORDS)]}{i}" for i in range(tokens)]


def stamp_bench_delta(delta: str) -> str:
    return f"{delta}@{time.time_ns() // 1000:016d} "


def bench_frames(session: Session, tokens: int) -> list[Frame]:
    """A fixed reply: one status, ``tokens`` deltas, text_end, response_complete."""
    session.turns += 1
    deltas = [TextDelta(delta=delta) for delta in bench_deltas(tokens)]
    return [Status(code="thinking"), *deltas, TextEnd(), ResponseComplete(conversation_id=session.conversation_id)]


def bench_reply(session: Session, request: TurnRequest) -> Reply | None:
    """The :data:`chat.sandbox.server.ReplyHook` of the benchmark: stamped fixed replies to ``bench …`` texts."""
    bench = bench_request(request)
    if bench is None:
        return None
    tokens, pace = bench
    return Reply(bench_frames(session, tokens), pace=pace, on_delta=stamp_bench_delta)
