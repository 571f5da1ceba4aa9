"""How much the relay adds on top of the upstream, measured against the floor in the same run.

Three paths carry the same load from the same sandbox process (``python -m bench.sandbox``, the sandbox with the
replies of :mod:`bench.sandbox_replies`):

* ``direct``: clients speak the VIZOCHOK protocol to the sandbox themselves (the upstream alone);
* ``proxy``: the same clients through :mod:`bench.proxy`, a bare pass-through written with ``websockets`` alone
  (the floor for any Python relay);
* ``relay``: simulated browsers through the real app under Daphne (:mod:`bench.daphne_counted`): ``GET /`` for a
  session cookie and a conversation, the socket at ``/ws/chat/?c=…``, a ``sync`` frame as the page sends on open,
  then ``{"kind": "message", "text": …, "key": …}`` per turn, exactly what the htmx form sends.

Every process is separate, so CPU and memory are read per process with psutil. Each phase is bounded (a turn
timeout, a phase deadline) and stops by itself. Definitions of every number are in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
from websockets.asyncio.client import ClientConnection, connect

from bench.sandbox_replies import BENCH_STAMP, bench_reply_chars

ROOT = Path(__file__).resolve().parent.parent
KIB = 1024
#: The API key the sandbox accepts; any ``sk_test_`` token works and no real key is ever used.
TOKEN = "sk_test_bench"
MAX_SIZE = 1 << 20

#: How much of a live bubble a browser frame shows (fragments/text_delta.html): a whole bubble says its length, a
#: chunk its offset and its text. Benchmark replies have no line breaks, so only the first piece is a whole bubble.
_LIVE_LENGTH = re.compile(r'data-length="(\d+)"')
_LIVE_CHUNK = re.compile(r'data-offset="(\d+)">([^<]*)</span>')
_FINAL = 'data-replaces="live-'
_READY = 'data-item="turn-state" data-state="ready"'
_ERROR = 'class="chat-error'
_WS_CONNECT = re.compile(r'ws-connect="([^"]+)"')


@dataclass
class BenchOptions:
    """What to run; the defaults are the issue's target load (200 conversations at 20 tokens/s)."""

    browsers: int = 200
    tokens: int = 40
    pace: float = 20.0
    turns: int = 3
    #: Seconds over which the conversations start (the same schedule in every mode).
    ramp: float = 2.0
    #: Seconds a simulated shopper waits between a reply and the next message.
    think: float = 0.3
    throughput_browsers: int = 100
    throughput_turns: int = 5
    throughput_tokens: int = 100
    #: The burst: this many new conversations send their first message at once, each an unpaced reply of
    #: ``burst_tokens`` (turn start under load: claims, first upstream sockets, first frames).
    burst_browsers: int = 20
    burst_tokens: int = 200
    #: Reply lengths whose DB writes per turn are compared (must not grow with the tokens).
    db_tokens: tuple[int, int] = (10, 200)
    modes: tuple[str, ...] = ("direct", "proxy", "relay")
    database_url: str = ""
    coalesce: float | None = None
    output: Path | None = None
    #: A folder for py-spy profiles (collapsed stacks) of the server process while each phase's turns run.
    profile: Path | None = None
    #: Every phase this many times, the paths taking turns; the targets are judged on the median (see ``_run``).
    repeat: int = 3
    turn_timeout: float = 60.0
    log: Callable[[str], None] = print

    def make_quick(self) -> None:
        """A tiny run (a few browsers, one repetition) to check the benchmark works; its numbers mean nothing."""
        self.browsers, self.turns, self.tokens, self.ramp = 4, 2, 10, 0.2
        self.throughput_browsers, self.throughput_turns, self.throughput_tokens = 4, 2, 20
        self.db_tokens = (5, 20)
        self.burst_browsers, self.burst_tokens = 4, 20
        self.repeat = 1


# --- processes -------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Child:
    """A server in its own process; its first stdout line may be its URL. Stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path, *, url: bool = True) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        # Only a server that prints just its URL may write to a pipe: Daphne's access log would fill it and block.
        stdout = subprocess.PIPE if url else self._log
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=stdout, stderr=self._log, start_new_session=True
        )
        self.ps = psutil.Process(self.process.pid)

    def first_line(self, timeout: float = 30.0) -> str:
        """The URL a server prints once bound (read with a deadline: a dead child must not hang the bench)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.process.stdout.fileno()
        os.set_blocking(fd, False)
        while time.monotonic() < deadline and b"\n" not in buffer:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            with contextlib.suppress(BlockingIOError):
                buffer += os.read(fd, 4096)
            time.sleep(0.02)  # a pipe has no awaitable here; bounded by the deadline
        if b"\n" not in buffer:
            raise TimeoutError(f"{self.name} did not print its URL")
        return buffer.split(b"\n", 1)[0].decode().strip()

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def thread_cpu(self) -> tuple[float, float]:
        """CPU seconds of the main thread (the event loop) and of all other threads (database, executors)."""
        main = other = 0.0
        for thread in self.ps.threads():
            if thread.id == self.process.pid:
                main += thread.user_time + thread.system_time
            else:
                other += thread.user_time + thread.system_time
        return main, other

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def _wait_for_port(port: int, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited early; see {child.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port; bounded by the deadline
    raise TimeoutError(f"{child.name} did not listen on {port}")


# --- clients ---------------------------------------------------------------------------------------------------


@dataclass
class Turn:
    """One turn as a client saw it: ``frames`` are (seconds since the send, characters of the reply visible)."""

    frames: list[tuple[float, int]] = field(default_factory=list)
    #: Per text-bearing frame: seconds from the sandbox sending its newest token to the client reading the frame.
    transit: list[float] = field(default_factory=list)
    end: float = 0.0
    error: bool = False
    started: float = 0.0


class Client(Protocol):
    async def open(self) -> None: ...

    async def turn(self, text: str, total_chars: int) -> Turn: ...

    async def close(self) -> None: ...


class ProtocolClient:
    """A VIZOCHOK protocol client (auth, then messages) for the ``direct`` and ``proxy`` paths."""

    def __init__(self, url: str, user: str, timeout: float) -> None:
        self.url = url
        self.user = user
        self.timeout = timeout
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        # Uncompressed, like the relay's upstream client and the proxy: every path puts the same bytes on the wire.
        self.ws = await connect(
            self.url, ping_interval=None, max_size=MAX_SIZE, open_timeout=self.timeout, compression=None
        )
        auth = {"type": "auth", "token": TOKEN, "store_id": "sandbox-store", "user_id": self.user}
        await self.ws.send(json.dumps(auth))
        async with asyncio.timeout(self.timeout):
            while json.loads(await self.ws.recv()).get("type") not in ("conversation_started", "session_restored"):
                pass

    async def turn(self, text: str, total_chars: int) -> Turn:
        assert self.ws is not None
        turn = Turn(started=time.perf_counter())
        await self.ws.send(json.dumps({"type": "message", "text": text}))
        chars = 0
        async with asyncio.timeout(self.timeout):
            while True:
                raw = await self.ws.recv()
                wall = time.time()
                now = time.perf_counter() - turn.started
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "text_delta":
                    delta = frame.get("delta", "")
                    chars += len(delta)
                    turn.frames.append((now, chars))
                    _record_transit(turn, wall, delta)
                elif kind == "ping":
                    await self.ws.send('{"type":"pong"}')
                elif kind in ("response_complete", "error"):
                    turn.end, turn.error = now, kind == "error"
                    return turn

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


class BrowserClient:
    """What a tab does: the page (session cookie, conversation), the socket, ``sync``, then form sends."""

    def __init__(self, base: str, timeout: float) -> None:
        self.base = base
        self.timeout = timeout
        self.cookie = ""
        self.path = ""
        self.ws: ClientConnection | None = None

    def load_page(self) -> None:
        """``GET /?lang=en`` (blocking; run in a thread): the session cookie and ``#chat[ws-connect]``."""
        with urllib.request.urlopen(f"{self.base}/?lang=en", timeout=self.timeout) as response:
            page = response.read().decode()
            cookies = response.headers.get_all("Set-Cookie") or []
        # The cookie is Secure when DEBUG is off; a jar would not send it over plain http, a browser on https would.
        wanted = ("sessionid=", "vizochok_visitor=")  # the anonymous shopper is the signed visitor cookie
        self.cookie = "; ".join(c.split(";", 1)[0] for c in cookies if c.startswith(wanted))
        match = _WS_CONNECT.search(page)
        if not self.cookie or match is None:
            raise RuntimeError("the chat page gave no session cookie or socket URL")
        self.path = html.unescape(match[1])

    async def open(self) -> None:
        url = "ws://" + self.base.split("://", 1)[1] + self.path
        headers = {"Cookie": self.cookie, "Origin": self.base}
        self.ws = await connect(
            url, additional_headers=headers, ping_interval=None, max_size=MAX_SIZE, open_timeout=self.timeout
        )
        await self.ws.send(json.dumps({"kind": "sync", "after": 0}))
        async with asyncio.timeout(self.timeout):
            while _READY not in await self.ws.recv():
                pass

    async def turn(self, text: str, total_chars: int) -> Turn:
        assert self.ws is not None
        turn = Turn(started=time.perf_counter())
        await self.ws.send(json.dumps({"kind": "message", "text": text, "key": uuid.uuid4().hex}))
        chars = 0
        async with asyncio.timeout(self.timeout):
            while True:
                raw = await self.ws.recv()
                wall = time.time()
                assert isinstance(raw, str)
                now = time.perf_counter() - turn.started
                lengths = [int(length) for length in _LIVE_LENGTH.findall(raw)]
                lengths += [int(offset) + len(html.unescape(text)) for offset, text in _LIVE_CHUNK.findall(raw)]
                parts = bool(lengths)
                if parts:
                    chars = max(chars, *lengths)
                    _record_transit(turn, wall, raw)
                if _FINAL in raw:
                    chars = total_chars  # the stored reply replaces the live bubble: the whole text is visible
                if parts or _FINAL in raw:
                    turn.frames.append((now, chars))
                if _ERROR in raw:
                    turn.error = True  # refused sends (rate limit, busy) never get a "ready": stop here
                if _READY in raw or turn.error:
                    turn.end = now
                    return turn

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def _record_transit(turn: Turn, wall: float, text: str) -> None:
    """The frame's transit from the upstream: now minus the send stamp of the newest token it carries."""
    stamps = BENCH_STAMP.findall(text)
    if stamps:
        turn.transit.append(wall - max(int(stamp) for stamp in stamps) / 1e6)


# --- one load ---------------------------------------------------------------------------------------------------


@dataclass
class Load:
    conversations: int
    turns: int
    tokens: int
    pace: float
    ramp: float
    think: float

    @property
    def text(self) -> str:
        return f"bench {self.tokens} {self.pace:g}"


async def _converse(
    client: Client, load: Load, delay: float, total: int, out: list[Turn], *, connect: bool = False
) -> None:
    await asyncio.sleep(delay)
    if connect:
        try:
            await client.open()
        except Exception:
            out.append(Turn(error=True))
            return
    for index in range(load.turns):
        if index:
            await asyncio.sleep(load.think)
        try:
            out.append(await client.turn(load.text, total))
        except Exception:  # a failed turn (timeout, closed socket) is counted, never fatal
            out.append(Turn(error=True))
            return


async def _drive(clients: Sequence[Client], load: Load, *, connect: bool = False) -> tuple[list[Turn], float]:
    """Run the load; returns the turns and the wall time from the first send (``connect``: the first connection) to
    the last end. Clients are already open unless ``connect``."""
    total = bench_reply_chars(load.tokens)
    out: list[Turn] = []
    started = time.perf_counter()
    n = len(clients)
    conversing = (_converse(c, load, load.ramp * i / n, total, out, connect=connect) for i, c in enumerate(clients))
    await asyncio.gather(*conversing)
    return out, time.perf_counter() - started


async def _open_all(clients: Sequence[Client], batch: int = 50) -> None:
    """Open in batches, as a crowd of tabs would, without a SYN flood against a 2-core box."""
    for start in range(0, len(clients), batch):
        await asyncio.gather(*(client.open() for client in clients[start : start + batch]))


def _gc_pauses(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """The app's garbage-collector pauses during a phase: every frame in flight waits for each of them."""
    return {
        "collections": after.get("collections", 0) - before.get("collections", 0),
        "full": after.get("generation_2", 0) - before.get("generation_2", 0),
        "total_ms": round((after.get("us_total", 0) - before.get("us_total", 0)) / 1000, 1),
        "longest_ms": round(after.get("us_longest", 0) / 1000, 1),
    }


async def _close_all(clients: Sequence[Client]) -> None:
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


class _Sampler:
    """Peak RSS of a process while a load runs (sampled every 100 ms; stops with the load)."""

    def __init__(self, child: Child | None) -> None:
        self.child = child
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        assert self.child is not None
        while True:
            self.peak = max(self.peak, self.child.rss())
            await asyncio.sleep(0.1)

    def __enter__(self) -> _Sampler:
        if self.child is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class _Profiler:
    """``py-spy record`` on a server process for the duration of a load (collapsed stacks, one file per phase).

    Only the turns are profiled: page loads and socket opens before them would drown the streaming path.
    """

    def __init__(self, child: Child | None, folder: Path | None, name: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if child is None or folder is None or name.startswith("warmup"):
            return
        folder.mkdir(parents=True, exist_ok=True)
        argv = ["py-spy", "record", "--pid", str(child.process.pid), "--rate", "200", "--format", "raw"]
        argv += ["--nonblocking", "--output", str(folder / f"{name}.txt")]
        py_spy = Path(sys.executable).with_name("py-spy")
        argv[0] = str(py_spy) if py_spy.exists() else "py-spy"
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> _Profiler:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# --- statistics -------------------------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def reference_times(turns: Sequence[Turn]) -> dict[int, float]:
    """Median time (since the send) at which each character count of the reply became visible on the direct path."""
    seen: dict[int, list[float]] = defaultdict(list)
    for turn in turns:
        for at, chars in turn.frames:
            seen[chars].append(at)
    return {chars: statistics.median(times) for chars, times in seen.items()}


def added_latency(turns: Sequence[Turn], reference: dict[int, float]) -> list[float]:
    """Per frame: arrival minus the direct path's median arrival of the same newest character, in seconds."""
    return [at - reference[chars] for turn in turns for at, chars in turn.frames if chars in reference]


def _summary(turns: Sequence[Turn], wall: float, tokens: int) -> dict[str, Any]:
    good = [turn for turn in turns if not turn.error]
    frames = sum(len(turn.frames) for turn in good)
    return {
        "turns": len(good),
        "failed_turns": len(turns) - len(good),
        "wall_seconds": round(wall, 3),
        "turns_per_second": round(len(good) / wall, 2) if wall else 0.0,
        "deltas_per_second": round(len(good) * tokens / wall, 1) if wall else 0.0,
        "frames_per_turn": round(frames / len(good), 2) if good else 0.0,
        "first_frame_p50_ms": round(_pct([t.frames[0][0] for t in good if t.frames], 50) * 1000, 2),
        "turn_p50_ms": round(_pct([t.end for t in good], 50) * 1000, 1),
    }


# --- the run ----------------------------------------------------------------------------------------------------


class Stack:
    """The processes of one run: sandbox, bare proxy, and the app under Daphne on its own database."""

    def __init__(self, options: BenchOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.counters = workdir / "db-counters.json"
        self.top: dict[str, int] = {}
        #: The app's cyclic garbage collections so far (bench/daphne_counted.py), the longest since the last read.
        self.gc: dict[str, int] = {}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)
        py = sys.executable
        self.sandbox = Child(
            "sandbox",
            [py, "-m", "bench.sandbox", "--port", "0", "--pace", "0", "--max-connections", "100000"],
            env,
            workdir,
        )
        self.sandbox_url = self.sandbox.first_line()
        self.proxy = Child("proxy", [py, "-m", "bench.proxy", "--upstream", self.sandbox_url], env, workdir)
        self.proxy_url = self.proxy.first_line()
        database = options.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
        app_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
            "DATABASE_URL": database,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-" + uuid.uuid4().hex,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_HSTS_SECONDS": "0",
            "VIZOCHOK_WS_URL": self.sandbox_url,
            "VIZOCHOK_MAX_CONNECTIONS": str(
                max(options.browsers, options.throughput_browsers, options.burst_browsers) + 50
            ),
            "VIZOCHOK_LOG_LEVEL": "WARNING",
            # Hundreds of shoppers from one loopback address: the per-address shares (the line's) are not under test.
            "VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS": "0",
            "VIZOCHOK_QUEUED_PER_ADDRESS": "0",
            "BENCH_COUNTERS_FILE": str(self.counters),
        }
        if options.coalesce is not None:
            app_env["VIZOCHOK_COALESCE_SECONDS"] = str(options.coalesce)
        if options.database_url.startswith("postgres"):
            # Fresh tables for a repeatable run: the bench owns this database for its duration.
            subprocess.run([py, "manage.py", "flush", "--noinput"], cwd=ROOT, env=app_env, check=True)
        for step in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v", "0"]):
            subprocess.run([py, "manage.py", *step], cwd=ROOT, env=app_env, check=True, capture_output=True)
        port = _free_port()
        self.app_url = f"http://127.0.0.1:{port}"
        self.app = Child(
            "daphne",
            [py, "-m", "bench.daphne_counted", "-b", "127.0.0.1", "-p", str(port), "vizochok_site.asgi:application"],
            app_env,
            workdir,
            url=False,
        )
        _wait_for_port(port, self.app)

    def children(self) -> list[Child]:
        return [self.sandbox, self.proxy, self.app]

    async def db_counts(self) -> dict[str, int]:
        """Statement totals from the app process (it writes them on SIGUSR1)."""
        before = self.counters.stat().st_mtime_ns if self.counters.exists() else 0
        os.kill(self.app.process.pid, signal.SIGUSR1)
        for _ in range(100):
            if self.counters.exists() and self.counters.stat().st_mtime_ns != before:
                data = json.loads(self.counters.read_text())
                self.top = data.pop("top", {})
                self.gc = data.pop("gc", {})
                return {k: int(v) for k, v in data.items()}
            await asyncio.sleep(0.02)
        raise TimeoutError("the app did not write its DB counters")

    def stop(self) -> None:
        for child in reversed(self.children()):
            child.stop()


async def _browsers(stack: Stack, count: int, timeout: float) -> list[BrowserClient]:
    clients = [BrowserClient(stack.app_url, timeout) for _ in range(count)]
    for start in range(0, count, 16):
        await asyncio.gather(*(asyncio.to_thread(c.load_page) for c in clients[start : start + 16]))
    return clients


def _protocol_clients(url: str, count: int, timeout: float) -> list[ProtocolClient]:
    run = uuid.uuid4().hex[:8]
    return [ProtocolClient(url, f"bench-{run}-{i}", timeout) for i in range(count)]


async def _phase(
    stack: Stack,
    mode: str,
    load: Load,
    timeout: float,
    *,
    label: str = "warmup",
    memory: bool = False,
    connect: bool = False,
) -> tuple[list[Turn], dict[str, Any]]:
    """One mode under one load: open the clients, (memory), run the turns, measure CPU per process."""
    server = {"direct": None, "proxy": stack.proxy, "relay": stack.app}[mode]
    clients: list[Any]
    if mode == "relay":
        clients = await _browsers(stack, load.conversations, timeout)
    else:
        url = stack.sandbox_url if mode == "direct" else stack.proxy_url
        clients = _protocol_clients(url, load.conversations, timeout)
    result: dict[str, Any] = {}
    await asyncio.sleep(0.5)
    rss_before = server.rss() if server else 0
    if not connect:
        await _open_all(clients)
    await asyncio.sleep(1.0)
    if server is not None and memory:
        result["idle_kib_per_connection"] = round((server.rss() - rss_before) / load.conversations / KIB, 1)
    db_before = await stack.db_counts() if mode == "relay" else {}
    gc_before = dict(stack.gc) if mode == "relay" else {}
    cpu_before = {child.name: child.cpu() for child in stack.children()}
    threads_before = server.thread_cpu() if server is not None else (0.0, 0.0)
    own = psutil.Process()
    own_before = own.cpu_times().user + own.cpu_times().system
    with _Sampler(server) as sampler, _Profiler(server, stack.options.profile, f"{label}-{mode}"):
        turns, wall = await _drive(clients, load, connect=connect)
    cpu = {child.name: child.cpu() - cpu_before[child.name] for child in stack.children()}
    cpu["clients"] = own.cpu_times().user + own.cpu_times().system - own_before
    threads_after = server.thread_cpu() if server is not None else (0.0, 0.0)
    result.update(_summary(turns, wall, load.tokens))
    deltas = max(1, result["turns"] * load.tokens)
    result["cpu_seconds_per_1000_deltas"] = {name: round(value * 1000 / deltas, 3) for name, value in cpu.items()}
    if server is not None:
        # The event loop and the other threads (Django's database thread) share one GIL: their sum is the bound.
        main, other = (after - before for after, before in zip(threads_after, threads_before, strict=True))
        result["server_cpu_split_per_1000_deltas"] = {
            "event_loop": round(main * 1000 / deltas, 3),
            "other_threads": round(other * 1000 / deltas, 3),
        }
    if server is not None and memory:
        result["active_kib_per_connection"] = round((sampler.peak - rss_before) / load.conversations / KIB, 1)
    if mode == "relay":
        await asyncio.sleep(0.5)  # the last turn's writes finish before its "ready" frame; this is margin
        db_after = await stack.db_counts()
        good = max(1, result["turns"])
        result["db_per_turn"] = {k: round((db_after.get(k, 0) - db_before.get(k, 0)) / good, 2) for k in db_after}
        result["db_top_statements_cumulative"] = stack.top
        result["gc_pauses"] = _gc_pauses(gc_before, stack.gc)
    await _close_all(clients)
    return turns, result


async def _run(options: BenchOptions, stack: Stack) -> dict[str, Any]:
    """Every phase ``repeat`` times, the paths taking turns within each repetition: on a shared or small machine one
    sample of a ratio moves by a third from run to run, so the targets are judged on the median of the repetitions
    (each repetition compares the paths measured next to each other)."""
    log = options.log
    latency_load = Load(options.browsers, options.turns, options.tokens, options.pace, options.ramp, options.think)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": sys.platform},
        "options": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items() if k not in ("log", "output")
        },
        # Per phase and path: one result per repetition, in order.
        "latency": {mode: [] for mode in options.modes},
        "throughput": {mode: [] for mode in options.modes},
        "burst": {mode: [] for mode in options.modes},
    }
    results["options"]["database"] = options.database_url.split("@")[-1] if options.database_url else "sqlite"
    await _warm_up(stack, options)
    burst_load = Load(options.burst_browsers, 1, options.burst_tokens, 0, 0.0, 0.0)
    for repetition in range(max(1, options.repeat)):
        first = repetition == 0
        await _latency_phases(stack, options, latency_load, results["latency"], profile=first, memory=first)
        await _throughput_phases(stack, options, results["throughput"], profile=first)
        for mode in options.modes:
            log(f"burst phase: {mode}, {burst_load.conversations} new conversations at once, {burst_load.tokens} each")
            label = "burst" if first else "warmup-burst"
            # A new conversation on the upstream alone starts with its socket (connect, auth, conversation_started),
            # as the relay's starts with its upstream socket; the tab's own socket to the relay is open already.
            connect = mode != "relay"
            _turns, result = await _phase(stack, mode, burst_load, options.turn_timeout, label=label, connect=connect)
            results["burst"][mode].append(result)
            log(f"  {json.dumps(result)}")
        if "direct" in options.modes:  # the same with the direct sockets opened beforehand, for comparison
            _turns, result = await _phase(stack, "direct", burst_load, options.turn_timeout)
            results["burst"].setdefault("direct_open", []).append(result)
            log(f"  direct, sockets opened beforehand: {json.dumps(result)}")

    if "relay" in options.modes:
        per_tokens: dict[str, Any] = {}
        for tokens in options.db_tokens:
            _turns, result = await _phase(stack, "relay", Load(5, 2, tokens, 0, 0.2, 0.1), options.turn_timeout)
            per_tokens[str(tokens)] = result["db_per_turn"]
        results["db_per_turn_by_tokens"] = per_tokens
        log(f"DB statements per turn by reply length: {json.dumps(per_tokens)}")
    results["summary"] = _targets(results, options)
    results["guards"] = frame_guards(results)
    # Other processes on the box skew every number here; the load average says how much.
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


async def _warm_up(stack: Stack, options: BenchOptions) -> None:
    """The first turns import templates and modules; they must not count as per-connection memory or latency."""
    for mode in options.modes:
        await _phase(stack, mode, Load(2, 1, 5, 0, 0, 0), options.turn_timeout)


async def _throughput_phases(stack: Stack, options: BenchOptions, out: dict[str, list[Any]], *, profile: bool) -> None:
    """One repetition of the unpaced load on every path (CPU per delta when nothing waits on the upstream)."""
    load = Load(options.throughput_browsers, options.throughput_turns, options.throughput_tokens, 0, 0.5, 0.0)
    for mode in options.modes:
        options.log(f"throughput phase: {mode}, {load.conversations} conversations, sandbox unpaced")
        label = "throughput" if profile else "warmup-throughput"  # profiled once
        _turns, result = await _phase(stack, mode, load, options.turn_timeout, label=label)
        out[mode].append(result)
        options.log(f"  {json.dumps(result)}")


async def _frame_phases(options: BenchOptions, stack: Stack) -> dict[str, Any]:
    """The frame-level guards alone: the paced and the unpaced phases on every path, ``repeat`` times."""
    load = Load(options.browsers, options.turns, options.tokens, options.pace, options.ramp, options.think)
    results: dict[str, Any] = {
        "latency": {mode: [] for mode in options.modes},
        "throughput": {mode: [] for mode in options.modes},
    }
    await _warm_up(stack, options)
    for repetition in range(max(1, options.repeat)):
        first = repetition == 0
        await _latency_phases(stack, options, load, results["latency"], profile=first, memory=False)
        await _throughput_phases(stack, options, results["throughput"], profile=first)
    results["guards"] = frame_guards(results)
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _server_cpu(result: dict[str, Any], mode: str) -> float:
    """The path's own server process's CPU seconds per 1000 deltas in one phase."""
    return float(result["cpu_seconds_per_1000_deltas"]["daphne" if mode == "relay" else "proxy"])


def frame_guards(results: dict[str, Any]) -> dict[str, Any]:
    """The per-frame targets that the line's bookkeeping must not move (issue 23): relay-added p99 per frame
    <= 10 ms at the paced load in the best repetition, and the relay's server CPU per delta <= 3x the bare
    proxy's in the unpaced phase (median of the repetitions' ratios).

    The CPU guard is the unpaced phase's: the issue gives its baseline as 0.040 vs 0.014-0.016 ms per delta, which
    is that phase (the paced relay measured 0.26 ms a delta then; 3.1-4.9x the proxy's in the runs since). The
    paced phase's ratio is reported beside it, not judged: its 40 deltas a turn carry each turn's fixed costs (the
    page, the claim, the stored messages, the upstream socket), which a per-token guard is not about."""
    guards: dict[str, Any] = {}
    relay = results["latency"].get("relay", [])
    if relay and "added_ms" in relay[0]:
        added = [run["added_ms"]["p99"] for run in relay]
        failed = sum(run["failed_turns"] for run in relay)
        guards["relay_added_p99_ms_best"] = min(added)
        guards["relay_added_p99_ms_runs"] = added
        if all("gc_pauses" in run for run in relay):
            guards["relay_gc_longest_pause_ms_runs"] = [run["gc_pauses"]["longest_ms"] for run in relay]
        guards["proxy_added_p99_ms_runs"] = [run["added_ms"]["p99"] for run in results["latency"].get("proxy", [])]
        guards["target_added_p99_le_10ms_best"] = min(added) <= 10 and failed == 0
    for phase in ("throughput", "latency"):
        by_mode = results[phase]
        if by_mode.get("relay") and by_mode.get("proxy"):
            pairs = list(zip(by_mode["relay"], by_mode["proxy"], strict=True))
            ratios = [_server_cpu(r, "relay") / _server_cpu(p, "proxy") for r, p in pairs if _server_cpu(p, "proxy")]
            guards[f"{phase}_server_cpu_per_1000_deltas"] = {
                "relay": _median([_server_cpu(r, "relay") for r, _p in pairs]),
                "proxy": _median([_server_cpu(p, "proxy") for _r, p in pairs]),
            }
            guards[f"{phase}_cpu_vs_proxy"] = _median(ratios)
            guards[f"{phase}_cpu_vs_proxy_runs"] = [round(ratio, 2) for ratio in ratios]
            if phase == "throughput":
                guards["target_throughput_cpu_le_3x_proxy"] = bool(ratios) and _median(ratios) <= 3
    return guards


async def _latency_phases(
    stack: Stack, options: BenchOptions, load: Load, out: dict[str, list[Any]], *, profile: bool, memory: bool
) -> None:
    """One repetition of the paced load on every path; per frame, the path's transit against the direct path's."""
    reference: dict[int, float] = {}
    floor: list[float] = []
    for mode in options.modes:
        options.log(f"latency phase: {mode}, {load.conversations} conversations at {load.pace:g} tokens/s")
        label = "latency" if profile else "warmup-latency"
        turns, result = await _phase(stack, mode, load, options.turn_timeout, label=label, memory=memory)
        good = [turn for turn in turns if not turn.error]
        transit = [seconds for turn in good for seconds in turn.transit]
        result["transit_ms"] = {
            "p50": _ms(_pct(transit, 50)),
            "p99": _ms(_pct(transit, 99)),
            "max": _ms(max(transit, default=float("nan"))),
            "frames": len(transit),
        }
        if mode == "direct":
            reference, floor = reference_times(good), transit
        if reference:
            since = added_latency(good, reference)
            firsts = added_latency([Turn(frames=t.frames[:1]) for t in good if t.frames], reference)
            result["added_ms"] = {
                # Per browser frame, what the path adds to the upstream's own delivery under the same load.
                "p50": _ms(_pct(transit, 50) - _pct(floor, 50)),
                "p99": _ms(_pct(transit, 99) - _pct(floor, 99)),
                # Since the send, against the direct path's median for the same text: this includes the turn
                # start (claim, stored message, upstream socket), which the per-frame numbers above do not.
                "since_send_p50": _ms(_pct(since, 50)),
                "since_send_p99": _ms(_pct(since, 99)),
                "first_frame_p50": _ms(_pct(firsts, 50)),
                "first_frame_p99": _ms(_pct(firsts, 99)),
            }
        out[mode].append(result)
        options.log(f"  {json.dumps(result)}")


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


def _targets(results: dict[str, Any], options: BenchOptions) -> dict[str, Any]:
    """The issue's targets next to what this run measured (reported, never asserted): the median over the
    repetitions, each of them listed beside it."""
    latency, throughput, burst = results["latency"], results["throughput"], results["burst"]
    summary: dict[str, Any] = {"repetitions": max(1, options.repeat)}
    relay = latency.get("relay", [])
    if relay and "added_ms" in relay[0]:
        added = [run["added_ms"]["p99"] for run in relay]
        failed = sum(run["failed_turns"] for run in relay)
        summary["relay_added_p99_ms"] = _median(added)
        summary["relay_added_p99_ms_runs"] = added
        summary["target_p99_le_10ms"] = summary["relay_added_p99_ms"] <= 10 and failed == 0
        summary["relay_first_frame_p99_ms"] = _median([run["added_ms"]["first_frame_p99"] for run in relay])
        if all("gc_pauses" in run for run in relay):
            # Beside each repetition's p99: a full collection in the app stops every stream for its length.
            summary["relay_gc_longest_pause_ms_runs"] = [run["gc_pauses"]["longest_ms"] for run in relay]
            summary["relay_gc_full_collections_runs"] = [run["gc_pauses"]["full"] for run in relay]
    proxy = latency.get("proxy", [])
    if proxy and "added_ms" in proxy[0]:
        summary["proxy_added_p99_ms"] = _median([run["added_ms"]["p99"] for run in proxy])
    if throughput.get("relay") and throughput.get("proxy"):
        ratios = [
            r["deltas_per_second"] / p["deltas_per_second"]
            for r, p in zip(throughput["relay"], throughput["proxy"], strict=True)
            if p["deltas_per_second"]
        ]
        summary["throughput_vs_proxy"] = _median(ratios)
        summary["throughput_vs_proxy_runs"] = [round(ratio, 3) for ratio in ratios]
        summary["target_throughput_ge_60pct"] = summary["throughput_vs_proxy"] >= 0.6
    if burst.get("relay") and burst.get("direct"):
        ratios = [
            r["wall_seconds"] / d["wall_seconds"]
            for r, d in zip(burst["relay"], burst["direct"], strict=True)
            if d["wall_seconds"]
        ]
        failed = sum(run["failed_turns"] for run in burst["relay"])
        summary["burst_relay_vs_direct_time"] = _median(ratios)
        summary["burst_relay_vs_direct_time_runs"] = [round(ratio, 2) for ratio in ratios]
        summary["target_burst_le_2x_direct"] = summary["burst_relay_vs_direct_time"] <= 2 and failed == 0
        opened = burst.get("direct_open", [])
        if opened:
            summary["burst_relay_vs_direct_sockets_open_beforehand"] = _median(
                [r["wall_seconds"] / d["wall_seconds"] for r, d in zip(burst["relay"], opened, strict=True)]
            )
    if relay and "idle_kib_per_connection" in relay[0]:
        summary["idle_kib_per_browser"] = relay[0]["idle_kib_per_connection"]
        summary["target_idle_le_150kib"] = relay[0]["idle_kib_per_connection"] <= 150
    by_tokens = results.get("db_per_turn_by_tokens")
    if by_tokens:
        writes = [v.get("writes", 0) for v in by_tokens.values()]
        summary["db_writes_per_turn_by_tokens"] = dict(zip(by_tokens, writes, strict=True))
        summary["target_writes_constant"] = max(writes) - min(writes) < 0.5
    return summary


def run(options: BenchOptions) -> dict[str, Any]:
    """Start the processes, run every phase, stop the processes; returns (and writes) the results."""
    return _on_a_stack(options, _run)


def run_frame_guards(options: BenchOptions) -> dict[str, Any]:
    """Only the phases behind the frame-level guards (:func:`frame_guards`), on a stack of their own; ``manage.py
    bench_peak`` runs them right after its peak phase. Written to ``options.output`` if set."""
    return _on_a_stack(options, _frame_phases)


def _on_a_stack(
    options: BenchOptions, phases: Callable[[BenchOptions, Stack], Coroutine[Any, Any, dict[str, Any]]]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        stack = Stack(options, Path(tmp))
        try:
            results = asyncio.run(phases(options, stack))
        except BaseException:
            for child in stack.children():
                with contextlib.suppress(OSError):
                    tail = child.log_path.read_text(errors="replace")[-2000:]
                    if tail.strip():
                        options.log(f"--- {child.name} log tail ---\n{tail}")
            raise
        finally:
            stack.stop()
    if options.output is not None:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(json.dumps(results, indent=2) + "\n")
    return results
