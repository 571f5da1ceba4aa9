"""Helpers for driving the sandbox over real loopback sockets with a raw websockets client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chat.sandbox.server import SandboxConfig, SandboxServer

TIMEOUT = 3.0


def fast_config(**overrides: Any) -> SandboxConfig:
    """Unpaced, no server pings: tests opt into keepalive explicitly."""
    return SandboxConfig(**{"tokens_per_second": 0.0, "ping_interval": 0.0, **overrides})


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(fast_config()) as sandbox:
        yield sandbox


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        frame = json.loads(await ws.recv())
    assert isinstance(frame, dict)
    return frame


async def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """Frames up to and including the first of type ``kind``."""
    frames = [await recv(ws)]
    while frames[-1]["type"] != kind:
        frames.append(await recv(ws))
    return frames


async def turn(ws: ClientConnection, frame: dict[str, Any]) -> list[dict[str, Any]]:
    await ws.send(json.dumps(frame))
    return await until(ws, "response_complete")


async def _drain(ws: ClientConnection) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            await ws.recv()


async def close_code(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; return its close code and reason."""
    with pytest.raises(ConnectionClosed) as info:
        await _drain(ws)
    received = info.value.rcvd
    assert received is not None, "the server closed without a close frame"
    return received.code, received.reason


async def authed(url: str, token: str = "pk_test_abc", **fields: Any) -> tuple[ClientConnection, dict[str, Any]]:
    """Open a socket, authenticate, return it with the session frame (conversation_started/session_restored)."""
    ws = await connect(url)
    await ws.send(json.dumps({"type": "auth", "token": token, **fields}))
    assert (await recv(ws)) == {"type": "auth_ok"}
    return ws, await recv(ws)


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["delta"] for frame in frames if frame["type"] == "text_delta")


def types(frames: list[dict[str, Any]]) -> list[str]:
    """Frame types with runs of text_delta collapsed, so order assertions stay readable."""
    out: list[str] = []
    for frame in frames:
        if frame["type"] == "text_delta" and out and out[-1] == "text_delta":
            continue
        out.append(frame["type"])
    return out
