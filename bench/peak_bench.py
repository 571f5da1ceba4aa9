"""Peak hour on one key: the deployment's line in front of the key's three upstream sockets, measured end to end.

Two Daphne processes share Redis and PostgreSQL; the upstream is the sandbox enforcing the API's 3 sockets per key
(a 4th is closed with 4029) with every reply taking about ``reply_seconds``. Shoppers on several client addresses
(X-Forwarded-For behind one trusted proxy hop) talk in a closed loop (send, read the reply, think, send again),
enough of them to ask for twice the key's capacity; one more address floods with many fresh identities, sending
again the moment a turn ends or is refused.

The sandbox runs in a thread of this process, so its socket events and the clients' observations share one clock:

* **busy while waiting**: of the time any turn waits in line, the fraction during which all slots are opening for or
  serving a turn (a socket counts from its accept to its turn's end, and again from a turn's start; idle between);
* **queue wait** p50/p95 (a turn's send to the moment it leaves the line) against two ideal lines of the same
  arrivals and service times on the same number of slots: FIFO (the issue's target) and round-robin by address (the
  order the line means to keep, :func:`round_robin_waits`);
* **order inversions across processes**: a turn whose address had nothing else in line, served after a later such
  turn from another process (round-robin may reorder an address's own second turns: those are not inversions);
* **4029 closes** at the sandbox, **queue timeouts** (the line kept moving throughout), and the **flooder's share**
  of upstream time against its share in the ideal round-robin (its max-min fair share given the others' demand);
* the **frame-level guards** (``bench.relay_bench.run_frame_guards``) right after, in the same report.

Definitions and the latest table: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import html
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from chat.sandbox.server import Reply, SandboxConfig, SandboxServer
from chat.vizochok import messages as wire

ROOT = Path(__file__).resolve().parent.parent
_READY = 'data-item="turn-state" data-state="ready"'
_PLACE = re.compile(r'data-item="queue-state" data-position="(\d+)"')
_LEFT_LINE = 'data-item="queue-state" hx-swap-oob'
_CODE = re.compile(r'class="chat-error[^"]*"[^>]*data-code="([a-z_]+)"')
_WS_CONNECT = re.compile(r'ws-connect="([^"]+)"')
WORDS = ("milk", "bread", "borscht", "eggs", "apples", "cheese", "pancakes", "butter")


@dataclass
class PeakOptions:
    duration: float = 120.0
    reply_seconds: float = 3.0
    slots: int = 3
    #: Shoppers in a closed loop and the addresses they come from.
    shoppers: int = 18
    addresses: int = 6
    #: Mean seconds a shopper reads a reply before the next message (exponential).
    think: float = 6.0
    #: Fresh identities the flooding address uses at once.
    flood_identities: int = 10
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    output: Path = ROOT / "bench" / "results" / "peak.json"
    log: Callable[[str], None] = print
    seed: int = 23
    #: The frame-level guards (``bench.relay_bench.run_frame_guards``) right after the peak phase: "full" (the
    #: issue's 200 x 20 tokens/s, ``guard_repeat`` repetitions), "quick" (a few browsers, to check it works), "off".
    frame_guards: str = "full"
    guard_repeat: int = 3


@dataclass
class TurnRecord:
    address: str
    process: str
    sent: float
    flooder: bool
    queued: bool = False
    granted: float | None = None
    ended: float | None = None
    code: str = ""
    #: Whether another turn of this address was waiting when this one was sent (round-robin may serve it later).
    address_busy: bool = False


class PeakSandbox(SandboxServer):
    """The sandbox recording when each socket takes a slot, starts and ends a turn, and closes (in this process's
    clock). A socket takes a slot when it authenticates, as the API counts it (the key arrives in ``auth``): a
    socket the relay opened ahead of its slot holds none until then, and one closed unauthenticated held none."""

    def __init__(self, config: SandboxConfig) -> None:
        super().__init__(config)
        self.events: list[tuple[float, str, int]] = []
        #: Seconds from each socket's accept to its ``auth``: long where the relay opened it ahead of its slot.
        self.accept_to_auth: list[float] = []
        self._accepted_at: dict[int, float] = {}
        config.reply_hook = self._reply

    def _authenticated(self, connection: Any) -> None:
        super()._authenticated(connection)
        now = time.monotonic()
        self.events.append((now, "open", id(connection)))
        self.accept_to_auth.append(now - self._accepted_at.pop(id(connection), now))

    async def _track(self, connection: Any, *, add: bool) -> None:
        await super()._track(connection, add=add)
        if add:
            self._accepted_at[id(connection)] = time.monotonic()
            return
        self._accepted_at.pop(id(connection), None)
        if connection.authenticated:
            self.events.append((time.monotonic(), "close", id(connection)))

    def _reply(self, session: Any, request: Any) -> Reply | None:
        connection = next((c for c in self._live if getattr(c, "session", None) is session), None)
        socket_id = id(connection)
        self.events.append((time.monotonic(), "start", socket_id))
        frames = self.assistant.respond(session, request)
        deltas = sum(1 for frame in frames if isinstance(frame, wire.TextDelta))
        seen = [0]
        gap = self.config.reply_seconds / deltas if deltas else 0.0

        def on_delta(text: str) -> str:
            seen[0] += 1
            if seen[0] == deltas:  # the last pause follows the last delta, then response_complete
                self.events.append((time.monotonic() + gap, "end", socket_id))
            return text

        if not deltas:
            self.events.append((time.monotonic(), "end", socket_id))
        return Reply(frames, on_delta=on_delta)


class App:
    """One Daphne process of the deployment."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        from tests.processes import free_port, wait_for_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "vizochok_site.asgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, self.process, 60, describe=name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Shopper:
    """A tab: its page load (identity, conversation), its socket from ``address``, form sends."""

    def __init__(self, app: App, address: str, flooder: bool) -> None:
        self.app = app
        self.address = address
        self.flooder = flooder
        self.cookie = ""
        self.path = ""
        self.ws: ClientConnection | None = None

    def load(self) -> None:
        request = urllib.request.Request(f"{self.app.url}/?lang=en", headers={"X-Forwarded-For": self.address})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = response.read().decode()
            cookies = response.headers.get_all("Set-Cookie") or []
        self.cookie = "; ".join(
            c.split(";", 1)[0] for c in cookies if c.startswith(("sessionid=", "vizochok_visitor="))
        )
        match = _WS_CONNECT.search(page)
        assert match is not None, "no socket URL on the page"
        self.path = html.unescape(match[1])

    async def open(self) -> None:
        self.ws = await connect(
            f"ws://127.0.0.1:{self.app.port}{self.path}",
            additional_headers={"Cookie": self.cookie, "Origin": self.app.url, "X-Forwarded-For": self.address},
            ping_interval=None,
            max_size=1 << 20,
            open_timeout=30,
        )

    async def turn(self, record: TurnRecord, text: str, timeout: float) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({"kind": "message", "text": text, "key": uuid.uuid4().hex}))
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                now = time.monotonic()
                assert isinstance(raw, str)
                if _PLACE.search(raw) and not record.queued:
                    record.queued = True
                if _LEFT_LINE in raw and record.granted is None:
                    record.granted = now
                code = _CODE.search(raw)
                if code is not None and not record.code:
                    record.code = code[1]
                if _READY in raw:
                    record.ended = now
                    if record.granted is None and not record.code:
                        record.granted = record.sent  # never waited: served at once
                    return


@dataclass
class Run:
    options: PeakOptions
    records: list[TurnRecord] = field(default_factory=list)
    waiting_by_address: dict[str, int] = field(default_factory=dict)


async def _loop(run: Run, shopper: Shopper, deadline: float, rng: random.Random) -> None:
    options = run.options
    if not shopper.flooder:  # shoppers arrive over the first think time; the flood starts at once
        await asyncio.sleep(rng.uniform(0, options.think))
    while time.monotonic() < deadline:
        address = shopper.address
        record = TurnRecord(address, shopper.app.name, time.monotonic(), shopper.flooder)
        record.address_busy = run.waiting_by_address.get(address, 0) > 0
        run.waiting_by_address[address] = run.waiting_by_address.get(address, 0) + 1
        run.records.append(record)
        try:
            await shopper.turn(record, rng.choice(WORDS), timeout=options.duration + 120)
        except (TimeoutError, OSError, Exception) as exc:  # a dropped socket ends this shopper
            record.code = record.code or f"client:{type(exc).__name__}"
            return
        finally:
            run.waiting_by_address[address] -= 1
        if shopper.flooder:
            await asyncio.sleep(0.2 if record.code else 0.0)
        else:
            await asyncio.sleep(rng.expovariate(1 / options.think) if options.think > 0 else 0)


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def in_arrival_order(arrivals: Sequence[tuple[float, float]], slots: int) -> list[float]:
    """:func:`fifo_waits` given back in the order of ``arrivals`` (ties in arrival keep their order)."""
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i], i))
    waits = [0.0] * len(arrivals)
    for index, wait in zip(order, fifo_waits([arrivals[i] for i in order], slots), strict=True):
        waits[index] = wait
    return waits


def fifo_waits(arrivals: Sequence[tuple[float, float]], slots: int) -> list[float]:
    """Waits of an ideal FIFO line on ``slots`` servers: ``arrivals`` are (arrival, service seconds)."""
    free = [0.0] * slots
    heapq.heapify(free)
    waits = []
    for arrival, service in sorted(arrivals):
        start = max(arrival, heapq.heappop(free))
        waits.append(start - arrival)
        heapq.heappush(free, start + service)
    return waits


def round_robin_waits(arrivals: Sequence[tuple[float, float, str]], slots: int) -> list[float]:
    """Waits of an ideal line served as ``chat.turns.slots`` means to serve it, on ``slots`` servers: ``arrivals`` are
    (arrival, service seconds, address), the waits come back in the same order.

    The line's rule (``RedisSlots``, the deployment's) with no delay of its own: every turn takes a ticket whose
    round is the line's current round when its address has no ticket this round or later, else one past the
    address's last ticket (queued or served); a turn that finds a free slot and nobody waiting is served at once, a
    freed slot goes at once to the least (round, arrival), and the line's round becomes the served ticket's.
    Work-conserving, like the line: a slot never waits while a turn does.
    """
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i][0], i))
    waits = [0.0] * len(arrivals)
    ends: list[float] = []  # when each busy slot frees (while anybody waits, every slot is busy)
    line: list[tuple[int, int, int]] = []  # a heap of (round, arrival order, index)
    lasts: dict[str, int] = {}
    current = 0
    position = 0
    while position < len(order) or line:
        arrival = arrivals[order[position]][0] if position < len(order) else math.inf
        if line and ends[0] <= arrival:  # a slot frees while turns wait: the line's head takes it at once
            now = heapq.heappop(ends)
            current, _seq, index = heapq.heappop(line)
            waits[index] = now - arrivals[index][0]
            heapq.heappush(ends, now + arrivals[index][1])
            continue
        index = order[position]
        position += 1
        while ends and ends[0] <= arrival:
            heapq.heappop(ends)  # freed with nobody in line
        address = arrivals[index][2]
        last = lasts.get(address)
        lasts[address] = round_ = current if last is None else max(current, last + 1)
        if len(ends) < slots and not line:
            current = round_  # served at once, its ticket's round is the line's (RedisSlots' join grants by its try)
            heapq.heappush(ends, arrival + arrivals[index][1])
            continue
        heapq.heappush(line, (round_, position, index))
    return waits


def shares(starts: Sequence[float], services: Sequence[float], flooder: Sequence[bool], since: float) -> float:
    """The flooder's share of the upstream time of the turns that started at ``since`` or later."""
    total = flood = 0.0
    for start, service, flooding in zip(starts, services, flooder, strict=True):
        if start >= since:
            total += service
            flood += service if flooding else 0.0
    return flood / total if total else 0.0


def _union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of the waiting intervals, as disjoint intervals in order."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _socket_levels(events: Sequence[tuple[float, str, int]]) -> list[tuple[float, int, int]]:
    """From each socket event on: how many sockets were opening for or serving a turn, and how many sat open and idle
    (a socket counts from its accept to its turn's end, and again from a turn's start; idle between)."""
    state: dict[int, bool] = {}
    levels: list[tuple[float, int, int]] = []
    busy = idle = 0
    for at, kind, socket_id in sorted(events):
        was = state.get(socket_id)
        now = {"open": True, "start": True, "end": False, "close": None}[kind]
        busy += (now is True) - (was is True)
        idle += (now is False) - (was is False)
        if now is None:
            state.pop(socket_id, None)
        else:
            state[socket_id] = now
        levels.append((at, busy, idle))
    return levels


def _while_waiting(
    events: Sequence[tuple[float, str, int]], waits: Sequence[tuple[float, float]]
) -> Iterator[tuple[int, int, float]]:
    """The union of the waiting intervals cut where a socket's state changed: (busy, idle open, seconds) each."""
    levels = _socket_levels(events)
    for start, end in _union(waits):
        level = (0, 0)
        for at, busy, idle in levels:
            if at <= start:
                level = (busy, idle)
        cursor = start
        for at, busy, idle in levels:
            if at <= start:
                continue
            if at >= end:
                break
            yield *level, at - cursor
            cursor, level = at, (busy, idle)
        yield *level, end - cursor


def busy_while_waiting(
    events: Sequence[tuple[float, str, int]], waits: Sequence[tuple[float, float]], slots: int
) -> float:
    """Of the union of the waiting intervals, the fraction with ``slots`` sockets opening for or serving a turn."""
    total = full = 0.0
    for busy, _idle, seconds in _while_waiting(events, waits):
        total += seconds
        full += seconds if busy >= slots else 0.0
    return full / total if total else 1.0


def idle_while_waiting(
    events: Sequence[tuple[float, str, int]], waits: Sequence[tuple[float, float]], slots: int
) -> dict[str, float]:
    """Where the slot-time missing from :func:`busy_while_waiting` went: slot-seconds during which an open socket sat
    idle while a turn waited (its turn over, not yet closed or given the next turn) and slot-seconds with no socket at
    all (one closed, the next not yet accepted)."""
    warm = empty = 0.0
    for busy, idle, seconds in _while_waiting(events, waits):
        missing = max(0, slots - busy)
        idle_open = min(missing, idle)
        warm += idle_open * seconds
        empty += (missing - idle_open) * seconds
    return {"idle_open_socket_slot_s": round(warm, 2), "no_socket_slot_s": round(empty, 2)}


def handover(events: Sequence[tuple[float, str, int]]) -> dict[str, float]:
    """Where a slot's time goes between turns (p50 seconds): a turn's end to its socket's close, a close to the next
    socket's open, and an open to that socket's turn start (the upstream handshake and the message)."""
    ordered = sorted(events)
    last_end: dict[int, float] = {}
    opened: dict[int, float] = {}
    end_to_close: list[float] = []
    close_to_open: list[float] = []
    open_to_start: list[float] = []
    pending_close: float | None = None
    for at, kind, socket_id in ordered:
        if kind == "end":
            last_end[socket_id] = at
        elif kind == "close":
            if socket_id in last_end:
                end_to_close.append(at - last_end.pop(socket_id))
            pending_close = at
        elif kind == "open":
            opened[socket_id] = at
            if pending_close is not None:
                close_to_open.append(at - pending_close)
                pending_close = None
        elif kind == "start" and socket_id in opened:
            open_to_start.append(at - opened.pop(socket_id))
    return {
        "end_to_close_mean_s": round(statistics.fmean(end_to_close), 3) if end_to_close else 0.0,
        "close_to_open_mean_s": round(statistics.fmean(close_to_open), 3) if close_to_open else 0.0,
        "end_to_close_p50_s": round(_pct(end_to_close, 0.5), 3),
        "close_to_open_p50_s": round(_pct(close_to_open, 0.5), 3),
        "open_to_start_p50_s": round(_pct(open_to_start, 0.5), 3),
    }


def inversions(records: Sequence[TurnRecord]) -> int:
    """Pairs of turns of one address sent through different processes and served in the other order.

    One address's turns go through the line in the order they came, whichever process took them (its rounds only
    grow); turns of different addresses are interleaved by round-robin on purpose, so they are not compared. Sends
    closer than 50 ms are not ordered (the two processes' views of "first" may differ that much).
    """
    served = [r for r in records if r.queued and r.granted is not None and not r.code]
    count = 0
    for a in served:
        for b in served:
            ordered = a.address == b.address and a.process != b.process and a.sent + 0.05 < b.sent
            if ordered and (a.granted or 0.0) > (b.granted or 0.0) + 0.05:
                count += 1
    return count


def _socket_holds(events: Sequence[tuple[float, str, int]], start: float) -> list[float]:
    opened: dict[int, float] = {}
    holds: list[tuple[float, float]] = []
    for at, kind, socket_id in sorted(events):
        if kind == "open":
            opened[socket_id] = at
        elif kind == "close" and socket_id in opened:
            began = opened.pop(socket_id)
            if began >= start:
                holds.append((began, at - began))
    return [hold for _began, hold in sorted(holds)]


def summarize(run: Run, events: Sequence[tuple[float, str, int]], refused_4029: int, start: float) -> dict[str, Any]:
    options = run.options
    served = [r for r in run.records if r.granted is not None and r.ended is not None and not r.code]
    granted = {id(r): r.granted or 0.0 for r in served}
    ended = {id(r): r.ended or 0.0 for r in served}
    waits = [granted[id(r)] - r.sent for r in served]
    # A turn's service is how long it held its slot: the upstream socket's life (its open to its close, as the
    # sandbox saw them), matched to the turns in the order they were granted; a turn's grant to its end where the
    # sockets do not match up (a warm socket served two turns). The end of a turn as its tab sees it comes later:
    # the slot is given back as soon as the upstream is done, while the reply is still being stored.
    holds = _socket_holds(events, start)
    by_grant = sorted(served, key=lambda r: granted[id(r)])
    hold_of = {id(r): hold for r, hold in zip(by_grant, holds, strict=False)} if len(holds) == len(served) else {}
    services = [(r.sent, hold_of.get(id(r), ended[id(r)] - granted[id(r)])) for r in served]
    # Two ideals of the same arrivals and service times, with no cost of their own: FIFO (the literal
    # target) and round-robin by address (the order the line means to keep, ``round_robin_waits``).
    fifo = in_arrival_order(services, options.slots)
    fair = round_robin_waits(
        [(r.sent, hold, r.address) for r, (_sent, hold) in zip(served, services, strict=True)], options.slots
    )
    shoppers = [not r.flooder for r in served]
    waiting = [(r.sent, granted[id(r)]) for r in served if r.queued]
    waiting += [(r.sent, r.ended) for r in run.records if r.queued and r.code and r.ended is not None]
    measured_events = [e for e in events if e[0] >= start]
    utilisation = busy_while_waiting(measured_events, waiting, options.slots)
    # Shares while every address is active: after the shoppers' arrival (one think time), until the load ends; each
    # turn counted with the service time the ideals give it, from when it was served (measured, or in the ideal).
    contended = start + options.think
    holds_only = [hold for _sent, hold in services]
    flooding = [r.flooder for r in served]
    share = shares([granted[id(r)] for r in served], holds_only, flooding, contended)
    fair_share = shares([r.sent + w for r, w in zip(served, fair, strict=True)], holds_only, flooding, contended)
    addresses = {r.address for r in served}
    codes: dict[str, int] = {}
    shoppers_codes: dict[str, int] = {}
    for r in run.records:
        if r.code:
            codes[r.code] = codes.get(r.code, 0) + 1
            if not r.flooder:
                shoppers_codes[r.code] = shoppers_codes.get(r.code, 0) + 1
    summary: dict[str, Any] = {
        "turns_sent": len(run.records),
        "turns_served": len(served),
        "refused_or_failed": codes,
        # Of those, the shoppers' own: a cap or a rate that the flood should meet and they should not.
        "shoppers_refused_or_failed": shoppers_codes,
        "busy_while_waiting": round(utilisation, 4),
        "waiting_s": round(sum(end - start for start, end in _union(waiting)), 2),
        **idle_while_waiting(measured_events, waiting, options.slots),
    }
    targets: dict[str, bool] = {"busy_while_waiting >= 0.95": utilisation >= 0.95}
    who_label = {"all": "all turns", "shoppers": "shoppers' turns"}
    for who, chosen in (("all", [True] * len(served)), ("shoppers", shoppers)):
        measured = [w for w, keep in zip(waits, chosen, strict=True) if keep]
        p50, p95 = _pct(measured, 0.5), _pct(measured, 0.95)
        summary[f"{who}_wait_p50_s"], summary[f"{who}_wait_p95_s"] = round(p50, 3), round(p95, 3)
        for ideal_name, ideal in (("fifo", fifo), ("round_robin", fair)):
            kept = [w for w, keep in zip(ideal, chosen, strict=True) if keep]
            i50, i95 = _pct(kept, 0.5), _pct(kept, 0.95)
            summary[f"{who}_ideal_{ideal_name}_p50_s"] = round(i50, 3)
            summary[f"{who}_ideal_{ideal_name}_p95_s"] = round(i95, 3)
            summary[f"{who}_vs_{ideal_name}_p50"] = round(p50 / i50, 3) if i50 else None
            summary[f"{who}_vs_{ideal_name}_p95"] = round(p95 / i95, 3) if i95 else None
            # 50 ms of slack: against an ideal of (nearly) no wait a ratio means nothing.
            met = p50 <= 1.2 * i50 + 0.05 and p95 <= 1.2 * i95 + 0.05
            targets[f"{who_label[who]}: wait p50 and p95 <= 1.2x ideal {ideal_name.replace('_', '-')}"] = met
    summary.update(
        {
            "order_inversions": inversions(run.records),
            "closes_4029": refused_4029,
            "queue_timeouts": codes.get("queue_timeout", 0),
            "flooder_share": round(share, 4),
            "flooder_share_ideal_round_robin": round(fair_share, 4),
            "one_address_in_n": round(1 / len(addresses), 4) if addresses else None,
            **handover(measured_events),
            "service_p50_s": round(statistics.median(holds_only), 3) if services else None,
            "services_from_sockets": bool(hold_of),
        }
    )
    targets.update(
        {
            "order inversions == 0": summary["order_inversions"] == 0,
            "4029 closes == 0": refused_4029 == 0,
            "queue timeouts == 0": summary["queue_timeouts"] == 0,
            "flooder share <= its share in ideal round-robin + 2 points": bool(served) and share <= fair_share + 0.02,
        }
    )
    return {"summary": summary, "targets": targets}


def _database(options: PeakOptions) -> tuple[str, Callable[[], None]]:
    if options.database_url:
        return options.database_url, lambda: None
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"vizochok_peak_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def run(options: PeakOptions) -> dict[str, Any]:
    from bench.relay_bench import Child

    rng = random.Random(options.seed)
    workdir = Path(tempfile.mkdtemp(prefix="peak-"))
    events_file = workdir / "sandbox-events.json"
    sandbox = Child(
        "sandbox",
        [
            sys.executable,
            "-m",
            "bench.peak_sandbox",
            "--events",
            str(events_file),
            "--reply-seconds",
            str(options.reply_seconds),
            "--max-connections",
            str(options.slots),
        ],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
        workdir,
    )
    sandbox_url = sandbox.first_line()
    database, drop = _database(options)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DATABASE_URL": database,
        "REDIS_URL": options.redis_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-" + uuid.uuid4().hex,
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_HSTS_SECONDS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VIZOCHOK_WS_URL": sandbox_url,
        # A key of its own: the deployment's line in Redis is this run's alone.
        "VIZOCHOK_API_KEY": f"sk_test_peak_{uuid.uuid4().hex}",
        "VIZOCHOK_MAX_CONNECTIONS": str(options.slots),
        "VIZOCHOK_TRUSTED_PROXY_HOPS": "1",
        "VIZOCHOK_LOG_LEVEL": "WARNING",
        "VIZOCHOK_TURNS_PER_MINUTE": "600",
        # A store expecting floods tightens the per-address rate below its generous default (120 a minute, 60 at once).
        "VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS": "60",
        "VIZOCHOK_TURN_BURST_PER_ADDRESS": "20",
        "VIZOCHOK_TURN_BURST": "100",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    apps = [App("a", env, workdir), App("b", env, workdir)]
    try:
        result = asyncio.run(_drive(options, apps, sandbox, events_file, rng, workdir))
    finally:
        for app in apps:
            app.stop()
        sandbox.stop()
        with contextlib.suppress(Exception):
            drop()
    if options.frame_guards != "off":
        result["frame_guards"] = frame_guards(options)
        result["targets"].update(guard_targets(result["frame_guards"]["guards"]))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2))
    return result


def frame_guards(options: PeakOptions) -> dict[str, Any]:
    """bench_relay's frame phases (paced 200 x 20 tokens/s and unpaced, on the direct, proxy and relay paths), on a
    stack of their own started once the peak phase's processes are gone: the same machine, minutes apart."""
    from bench.relay_bench import BenchOptions, run_frame_guards

    bench = BenchOptions(repeat=max(1, options.guard_repeat), log=options.log)
    if options.frame_guards == "quick":
        bench.make_quick()
    options.log(
        f"frame-level guards: {bench.browsers} browsers at {bench.pace:g} tokens/s, {bench.repeat} repetition(s)"
    )
    return run_frame_guards(bench)


def guard_targets(guards: dict[str, Any]) -> dict[str, bool]:
    """The guards' targets beside the line's (reported, never asserted)."""
    return {
        "frame guard: relay-added p99 per frame <= 10 ms (best repetition)": bool(
            guards.get("target_added_p99_le_10ms_best")
        ),
        "frame guard: server CPU per delta <= 3x bare proxy, unpaced": bool(
            guards.get("target_throughput_cpu_le_3x_proxy")
        ),
    }


async def _drive(
    options: PeakOptions, apps: list[App], sandbox: Any, events_file: Path, rng: random.Random, workdir: Path
) -> dict[str, Any]:
    log = options.log
    # Shoppers of one address (an office, a household) share it: the address is what the line counts.
    shoppers = [Shopper(apps[n % 2], f"10.20.0.{n % options.addresses + 1}", False) for n in range(options.shoppers)]
    flood = [Shopper(apps[n % 2], "10.66.66.66", True) for n in range(options.flood_identities)]
    everyone = shoppers + flood
    for batch in range(0, len(everyone), 8):
        await asyncio.gather(*(asyncio.to_thread(s.load) for s in everyone[batch : batch + 8]))
    await asyncio.gather(*(s.open() for s in everyone))
    run_state = Run(options)
    log(
        f"peak: {options.shoppers} shoppers on {options.addresses} addresses (think {options.think} s) + one address "
        f"flooding with {options.flood_identities} identities, {options.duration:.0f} s, replies of "
        f"{options.reply_seconds} s on {options.slots} sockets"
    )
    start = time.monotonic()
    deadline = start + options.duration
    tasks = [asyncio.create_task(_loop(run_state, s, deadline, random.Random(rng.random()))) for s in everyone]
    await asyncio.gather(*tasks)
    for s in everyone:
        if s.ws is not None:
            with contextlib.suppress(Exception):
                await s.ws.close()
    for app in apps:
        app.stop()  # a graceful shutdown closes the sockets kept warm: every socket's close is on record
    sandbox.stop()  # SIGTERM: it writes its events and exits
    written = json.loads(await asyncio.to_thread(events_file.read_text))
    events = [(float(at), str(kind), int(socket_id)) for at, kind, socket_id in written["events"]]
    refused = int(written["refused_4029"])
    result = summarize(run_state, events, refused, start)
    # Sockets the relay opened ahead of their slot and never authenticated on (VIZOCHOK_OPEN_AHEAD).
    result["sockets_accepted"] = int(written.get("accepted", 0))
    result["sockets_authenticated"] = int(written.get("authenticated", 0))
    waited = [float(x) for x in written.get("accept_to_auth", [])]
    result["accept_to_auth_p50_s"] = round(_pct(waited, 0.5), 3)
    result["accept_to_auth_p90_s"] = round(_pct(waited, 0.9), 3)
    result["options"] = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items() if k not in {"log", "database_url"}
    }
    result["events"] = [(round(at - start, 4), kind, socket_id % 100000) for at, kind, socket_id in events]
    result["waits"] = [
        (round(r.sent - start, 4), round((r.granted or r.ended or r.sent) - start, 4), r.flooder, r.code)
        for r in run_state.records
        if r.queued
    ]
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        # Other processes on the box skew every number here; the load average says how much.
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    log(f"app logs in {workdir}")
    return result
