"""The benchmark's replies, through the sandbox's reply hook and through ``python -m bench.sandbox``."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

from bench.sandbox_replies import BENCH_STAMP, bench_deltas, bench_reply, bench_reply_chars
from chat.sandbox.server import SandboxServer
from tests.processes import ROOT
from tests.sandbox.conftest import authed, fast_config, recv, text_of, turn, types


async def test_bench_replies_stamp_each_delta_with_its_send_time() -> None:
    """``manage.py bench_relay`` measures each frame's transit from these stamps (same host, same clock)."""
    async with SandboxServer(fast_config(reply_hook=bench_reply)) as sandbox:
        ws, _ = await authed(sandbox.url)
        before = time.time_ns() // 1000
        frames = await turn(ws, {"type": "message", "text": "bench 3"})
        after = time.time_ns() // 1000
        assert types(frames) == ["status", "text_delta", "text_end", "response_complete"]
        deltas = [frame["delta"] for frame in frames if frame["type"] == "text_delta"]
        assert [BENCH_STAMP.sub(" ", delta) for delta in deltas] == [f"{word} " for word in bench_deltas(3)]
        stamps = [int(BENCH_STAMP.search(delta)[1]) for delta in deltas]  # type: ignore[index]
        assert before <= stamps[0] <= stamps[1] <= stamps[2] <= after
        assert len("".join(deltas)) == bench_reply_chars(3)
        await ws.close()


async def test_other_texts_get_the_assistants_reply() -> None:
    async with SandboxServer(fast_config(reply_hook=bench_reply)) as sandbox:
        ws, _ = await authed(sandbox.url)
        frames = await turn(ws, {"type": "message", "text": "milk"})
        assert "product_cards" in types(frames)
        assert not BENCH_STAMP.search(text_of(frames))
        await ws.close()


async def test_the_sandbox_has_no_bench_replies_of_its_own() -> None:
    async with SandboxServer(fast_config()) as sandbox:
        ws, _ = await authed(sandbox.url)
        frames = await turn(ws, {"type": "message", "text": "bench 3"})
        assert not BENCH_STAMP.search(text_of(frames))
        await ws.close()


async def test_python_m_bench_sandbox_serves_bench_replies() -> None:
    """The process ``manage.py bench_relay`` starts as its upstream."""
    argv = ["-m", "bench.sandbox", "--port", "0", "--pace", "0", "--max-connections", "7"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            url = (await process.stdout.readline()).decode().strip()  # printed once bound; EOF if it dies
        assert url.startswith("ws://127.0.0.1:")
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "sk_test_bench"}))
            assert await recv(ws) == {"type": "auth_ok"}
            assert (await recv(ws))["type"] == "conversation_started"
            await ws.send(json.dumps({"type": "message", "text": "bench 2"}))
            frames = [await recv(ws) for _ in range(5)]
            assert types(frames) == ["status", "text_delta", "text_end", "response_complete"]
            assert len(BENCH_STAMP.findall(text_of(frames))) == 2
    finally:
        process.terminate()
        await process.wait()
