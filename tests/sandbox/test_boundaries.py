"""The sandbox's turn-boundary switches: each reading of what the reference leaves open (§6, §22 item 11).

Each test checks the exact frames on the wire. "Nothing more" is proven without waiting: once the turn's task has
ended (``wait_for_turns(0)``), a ``ping`` is answered after everything the turn wrote, so the frames before the
``pong`` are all the turn sent after what was read.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection

from chat.sandbox.assistant import Frame, Session, TextRequest
from chat.sandbox.assistant import Request as TurnRequest
from chat.sandbox.server import LATE_BLOCK, Reply, SandboxConfig, SandboxServer
from chat.vizochok import actions
from chat.vizochok.messages import ResponseComplete, Status, TextDelta, TextEnd, to_json

from .conftest import TIMEOUT, authed, fast_config, recv, text_of, turn, types, until

MILK = {"type": "message", "text": "milk"}
MILK_TYPES = ["status", "status", "status", "text_delta", "text_end", "product_cards", "quick_replies"]


async def rest(server: SandboxServer, ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame the socket's finished turns sent after what was read so far."""
    await asyncio.wait_for(server.wait_for_turns(0), TIMEOUT)
    await ws.send(json.dumps({"type": "ping"}))
    return (await until(ws, "pong"))[:-1]


async def fresh_milk_deltas(server: SandboxServer) -> list[str]:
    """The deltas of a first "milk" turn in a new conversation (the split is deterministic per turn number)."""
    ws, _ = await authed(server.url, token="pk_test_reference")
    frames = await turn(ws, MILK)
    await ws.close()
    return [frame["delta"] for frame in frames if frame["type"] == "text_delta"]


# Errors -----------------------------------------------------------------------------------------------------------


async def test_injected_error_ends_the_turn_without_response_complete_by_default(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    server.fail_next_turn()
    await ws.send(json.dumps(MILK))
    frames = await until(ws, "error")
    assert types(frames) == ["status", "status", "status", "text_delta", "error"]
    assert frames[-1] == {"type": "error", "code": "internal_error"}
    deltas = [frame["delta"] for frame in frames if frame["type"] == "text_delta"]
    assert deltas == (await fresh_milk_deltas(server))[:3]  # the start of the reply it would have given
    assert await rest(server, ws) == []
    assert types(await turn(ws, MILK)) == [*MILK_TYPES, "response_complete"]  # the next turn is whole
    await ws.close()


async def test_error_completes_sends_response_complete_after_an_injected_error() -> None:
    async with SandboxServer(fast_config(error_completes=True)) as sandbox:
        ws, started = await authed(sandbox.url)
        sandbox.fail_next_turn("rate_limit_exceeded", after_deltas=0)
        await ws.send(json.dumps(MILK))
        frames = await until(ws, "response_complete")
        assert frames == [
            {"type": "status", "code": "thinking"},
            {"type": "status", "code": "searching"},
            {"type": "status", "code": "checking_prices"},
            {"type": "error", "code": "rate_limit_exceeded"},
            {"type": "response_complete", "conversation_id": started["conversation_id"]},
        ]
        assert await rest(sandbox, ws) == []
        await ws.close()


async def test_error_completes_after_a_turn_timeout() -> None:
    async with SandboxServer(fast_config(turn_timeout=0.2, error_completes=True)) as sandbox:
        ws, _ = await authed(sandbox.url)
        sandbox.pause_turns()
        await ws.send(json.dumps(MILK))
        frames = await until(ws, "error")
        assert types(await until(ws, "response_complete")) == ["response_complete"]
        assert frames[-1] == {"type": "error", "code": "internal_error"}
        sandbox.resume_turns()
        assert await rest(sandbox, ws) == []
        await ws.close()


async def test_error_completes_leaves_refusals_standalone() -> None:
    """Only an error that ends a turn gets a response_complete; a refusal is outside any turn."""
    async with SandboxServer(fast_config(error_completes=True)) as sandbox:
        ws, _ = await authed(sandbox.url)
        sandbox.pause_turns()
        await ws.send(json.dumps(MILK))
        held = await until(ws, "text_delta")
        await ws.send(json.dumps(MILK))
        assert await recv(ws) == {"type": "error", "code": "agent_busy"}
        await ws.send("not json")
        assert await recv(ws) == {"type": "error", "code": "invalid_json"}
        sandbox.resume_turns()
        frames = held + await until(ws, "response_complete")
        assert types(frames) == [*MILK_TYPES, "response_complete"]
        assert await rest(sandbox, ws) == []
        await ws.close()


async def test_step_turns_lets_a_held_turn_send_one_more_piece(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    server.pause_turns()
    await ws.send(json.dumps({"type": "message", "text": "borscht"}))
    await until(ws, "text_delta")
    server.step_turns()
    assert types(await until(ws, "text_delta"))[-1:] == ["text_delta"]  # one more piece (after a status, maybe)
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}  # held again: nothing came before the answer to the ping
    server.resume_turns()
    server.step_turns()  # not paused: nothing to step, and the turn runs out
    assert types(await until(ws, "response_complete"))[-1] == "response_complete"
    await ws.close()


async def test_failures_queue_one_per_turn(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    server.fail_next_turn("internal_error", after_deltas=1)
    server.fail_next_turn("agent_busy", after_deltas=2)
    await ws.send(json.dumps(MILK))
    first = await until(ws, "error")
    await ws.send(json.dumps(MILK))
    second = await until(ws, "error")
    assert types(first) == types(second) == ["status", "status", "status", "text_delta", "error"]
    assert [len([f for f in frames if f["type"] == "text_delta"]) for frames in (first, second)] == [1, 2]
    assert (first[-1]["code"], second[-1]["code"]) == ("internal_error", "agent_busy")
    assert types(await turn(ws, MILK)) == [*MILK_TYPES, "response_complete"]
    await ws.close()


# response_complete --------------------------------------------------------------------------------------------------


async def test_complete_twice() -> None:
    async with SandboxServer(fast_config(complete_twice=True)) as sandbox:
        ws, started = await authed(sandbox.url)
        frames = await turn(ws, MILK)
        assert types(frames) == [*MILK_TYPES, "response_complete"]
        assert await rest(sandbox, ws) == [{"type": "response_complete", "conversation_id": started["conversation_id"]}]
        await ws.close()


async def test_complete_twice_with_error_completes() -> None:
    async with SandboxServer(fast_config(complete_twice=True, error_completes=True)) as sandbox:
        ws, _ = await authed(sandbox.url)
        sandbox.fail_next_turn()
        await ws.send(json.dumps(MILK))
        frames = await until(ws, "error")
        assert types(frames + await rest(sandbox, ws))[-3:] == ["error", "response_complete", "response_complete"]
        await ws.close()


async def test_block_after_complete() -> None:
    async with SandboxServer(fast_config(block_after_complete=True)) as sandbox:
        ws, _ = await authed(sandbox.url)
        assert types(await turn(ws, MILK)) == [*MILK_TYPES, "response_complete"]
        stray = await rest(sandbox, ws)
        assert stray == [*({"type": "text_delta", "delta": delta} for delta in LATE_BLOCK), {"type": "text_end"}]
        assert text_of(stray) == "Late words."
        # The conversation is free from response_complete on: the next turn starts with its own frames.
        frames = await turn(ws, MILK)
        assert frames[0] == {"type": "status", "code": "thinking"}
        assert "Late words." not in text_of(frames)
        await ws.close()


async def test_late_complete_keeps_the_conversation_busy_until_it_comes() -> None:
    async with SandboxServer(fast_config(late_complete_seconds=0.3)) as sandbox:
        ws, _ = await authed(sandbox.url)
        await ws.send(json.dumps(MILK))
        frames = await until(ws, "quick_replies")
        last_other = time.monotonic()
        await ws.send(json.dumps(MILK))
        assert await recv(ws) == {"type": "error", "code": "agent_busy"}
        complete = await recv(ws)
        assert complete["type"] == "response_complete"
        assert time.monotonic() - last_other >= 0.25  # loopback jitter aside, the configured gap
        assert types(frames) == MILK_TYPES
        assert await rest(sandbox, ws) == []
        await ws.close()


# Repeated frames ------------------------------------------------------------------------------------------------------


def doubled(frames: list[dict[str, Any]]) -> list[str]:
    """Types of frames identical to the one before them."""
    return [b["type"] for a, b in itertools.pairwise(frames) if a == b and b["type"] != "text_delta"]


async def test_repeat_frames_sends_rich_frames_and_text_end_twice() -> None:
    async with SandboxServer(fast_config(repeat_frames=True)) as sandbox:
        ws, _ = await authed(sandbox.url)
        search = await turn(ws, MILK)
        assert types(search) == [
            "status", "status", "status", "text_delta", "text_end", "text_end",
            "product_cards", "product_cards", "quick_replies", "quick_replies", "response_complete",
        ]  # fmt: skip
        assert doubled(search) == ["text_end", "product_cards", "quick_replies"]
        cart = await turn(ws, json.loads(to_json(actions.add_to_cart("milk-001", 1))))
        assert types(cart)[-6:] == [
            "text_end", "text_end", "event", "cart_changed", "cart_changed", "response_complete",
        ]  # fmt: skip
        assert doubled(cart) == ["text_end", "cart_changed"]
        recipe = await turn(ws, {"type": "message", "text": "recipe borscht"})
        assert doubled(recipe) == ["text_end", "ingredient_checklist", "text_end"]
        assert await rest(sandbox, ws) == []
        await ws.close()


# Sockets that close mid-turn ------------------------------------------------------------------------------------------


async def held_turn(server: SandboxServer) -> str:
    """Start a "milk" turn, hold it after its first delta, close its socket; returns the conversation id.

    (The reply's quick replies are the session's pending UI from then on: a resumed socket gets them again.)"""
    ws, started = await authed(server.url)
    server.pause_turns()
    await ws.send(json.dumps(MILK))
    await until(ws, "text_delta")
    await ws.close()
    await asyncio.wait_for(server.wait_for_connections(0), TIMEOUT)
    return str(started["conversation_id"])


async def test_by_default_a_turn_ends_with_its_socket(server: SandboxServer) -> None:
    conversation_id = await held_turn(server)
    await asyncio.wait_for(server.wait_for_turns(0), TIMEOUT)  # still paused: it was cancelled, not finished
    ws, restored = await authed(server.url, conversation_id=conversation_id)
    assert restored["type"] == "session_restored"
    assert (await recv(ws))["type"] == "quick_replies"
    server.resume_turns()
    assert types(await turn(ws, MILK)) == [*MILK_TYPES, "response_complete"]
    await ws.close()


async def test_turns_outlive_socket_keep_the_conversation_busy_until_they_end() -> None:
    async with SandboxServer(fast_config(turns_outlive_socket=True)) as sandbox:
        conversation_id = await held_turn(sandbox)
        assert sandbox.running_turns == 1
        ws, restored = await authed(sandbox.url, conversation_id=conversation_id)
        assert restored["type"] == "session_restored"
        assert (await recv(ws))["type"] == "quick_replies"
        await ws.send(json.dumps(MILK))
        assert await recv(ws) == {"type": "error", "code": "agent_busy"}
        sandbox.resume_turns()
        await asyncio.wait_for(sandbox.wait_for_turns(0), TIMEOUT)
        # Nothing of the old turn reached the new socket; the conversation is free again.
        assert await rest(sandbox, ws) == []
        frames = await turn(ws, MILK)
        assert types(frames) == [*MILK_TYPES, "response_complete"]
        assert frames[-1]["conversation_id"] == conversation_id
        await ws.close()


async def test_a_turn_that_outlived_its_socket_is_cancelled_with_the_server() -> None:
    async with SandboxServer(fast_config(turns_outlive_socket=True)) as sandbox:
        await held_turn(sandbox)
        assert sandbox.running_turns == 1
    assert sandbox.running_turns == 0


# The config is read at the moment of use ---------------------------------------------------------------------------


async def test_switches_apply_between_turns_of_an_open_socket(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    await turn(ws, MILK)
    assert await rest(server, ws) == []
    server.config.complete_twice = True
    await turn(ws, MILK)
    assert types(await rest(server, ws)) == ["response_complete"]
    server.config = SandboxConfig(tokens_per_second=0, ping_interval=0, block_after_complete=True)  # a new object
    await turn(ws, MILK)
    assert text_of(await rest(server, ws)) == "Late words."
    await ws.close()


# The reply hook ---------------------------------------------------------------------------------------------------


def shouting_hook(session: Session, request: TurnRequest) -> Reply | None:
    if not (isinstance(request, TextRequest) and request.text == "shout"):
        return None
    frames: list[Frame] = [Status(code="thinking"), TextDelta(delta="a"), TextDelta(delta="b"), TextEnd()]
    return Reply([*frames, ResponseComplete(conversation_id=session.conversation_id)], pace=0, on_delta=str.upper)


async def test_reply_hook_replaces_the_assistant_and_switches_still_apply() -> None:
    async with SandboxServer(fast_config(reply_hook=shouting_hook, repeat_frames=True, complete_twice=True)) as sandbox:
        ws, started = await authed(sandbox.url)
        frames = await turn(ws, {"type": "message", "text": "shout"})
        complete = {"type": "response_complete", "conversation_id": started["conversation_id"]}
        assert frames == [
            {"type": "status", "code": "thinking"},
            {"type": "text_delta", "delta": "A"},
            {"type": "text_delta", "delta": "B"},
            {"type": "text_end"},
            {"type": "text_end"},
            complete,
        ]
        assert await rest(sandbox, ws) == [complete]
        assert "product_cards" in types(await turn(ws, MILK))  # None: the assistant answers
        await ws.close()
