"""The sandbox upstream over real loopback sockets: handshake, turns, cart, sessions, limits and faults."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chat.sandbox.server import SandboxServer
from chat.vizochok import actions
from chat.vizochok.messages import Action, CartChanged, parse_server, to_json

from .conftest import authed, close_code, fast_config, recv, text_of, turn, types, until


def wire(frame: Action) -> dict[str, Any]:
    """A built action as the JSON object a client would send."""
    return json.loads(to_json(frame))  # type: ignore[no-any-return]


# Handshake ------------------------------------------------------------------------------------------------------


async def test_handshake_starts_a_conversation(server: SandboxServer) -> None:
    ws, started = await authed(server.url, store_id="my-store", user_id="user_42")
    assert started["type"] == "conversation_started"
    assert started["conversation_id"].startswith("conv_")
    assert len(started["conversation_id"]) == 21
    await ws.close()


async def test_other_paths_are_404(server: SandboxServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url.replace("/api/v1/ws/chat", "/nope"))
    assert info.value.response.status_code == 404


async def test_auth_timeout_closes_4001() -> None:
    async with SandboxServer(fast_config(auth_timeout=0.2)) as sandbox, connect(sandbox.url) as ws:
        assert (await close_code(ws))[0] == 4001


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ({"type": "message", "text": "hi"}, 4002),
        ({"type": "auth"}, 4002),
        ("not json", 4002),
        ({"type": "auth", "token": "pk_live_abc"}, 4003),
        ({"type": "auth", "token": "sk_test_"}, 4003),
        ({"type": "auth", "token": "pk_test_abc", "store_id": ""}, 4004),
        ({"type": "auth", "token": "pk_test_abc", "store_id": "bad store!"}, 4004),
    ],
)
async def test_bad_auth_close_codes(server: SandboxServer, first: object, code: int) -> None:
    async with connect(server.url) as ws:
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        assert (await close_code(ws))[0] == code


async def test_fourth_connection_per_key_closes_4029_and_slots_are_released(server: SandboxServer) -> None:
    sockets = [(await authed(server.url, token="sk_test_pool"))[0] for _ in range(3)]
    async with connect(server.url) as fourth:
        await fourth.send(json.dumps({"type": "auth", "token": "sk_test_pool"}))
        assert (await close_code(fourth))[0] == 4029
    assert server.refused_too_many == 1  # counted: a benchmark reports how many sockets the relay had refused
    other, _ = await authed(server.url, token="sk_test_other")  # the limit is per key
    await sockets.pop().close()
    await server.wait_for_connections(3)
    again, started = await authed(server.url, token="sk_test_pool")
    assert started["type"] == "conversation_started"
    for ws in [*sockets, other, again]:
        await ws.close()


async def test_sockets_count_from_their_auth_unless_counted_before_it(server: SandboxServer) -> None:
    """The key arrives in ``auth`` (reference §3, §4.1): a socket that has not sent it holds none of the key's three,
    unless ``count_before_auth`` (the other reading), where a 4th open socket is closed with 4029 at once."""
    sockets = [(await authed(server.url, token="sk_test_pool"))[0] for _ in range(3)]
    async with connect(server.url) as waiting:  # open, no auth yet: not refused
        await sockets.pop().close()
        await waiting.send(json.dumps({"type": "auth", "token": "sk_test_pool"}))
        assert (await recv(waiting))["type"] == "auth_ok"
        assert server.refused_too_many == 0 and server.authenticated == 3 and server.peak_authenticated == 3
    for ws in sockets:
        await ws.close()
    async with SandboxServer(fast_config(count_before_auth=True, max_connections_per_key=1)) as sandbox:
        async with connect(sandbox.url) as first, connect(sandbox.url) as second:
            assert (await close_code(second))[0] == 4029  # refused before it sent anything
            assert sandbox.refused_too_many == 1
            await first.send(json.dumps({"type": "auth", "token": "sk_test_pool"}))
            assert (await recv(first))["type"] == "auth_ok"
        await sandbox.wait_for_connections(0)
        again, started = await authed(sandbox.url, token="sk_test_pool")  # the count before auth was given back
        assert started["type"] == "conversation_started"
        await again.close()


async def test_reply_seconds_spreads_every_reply_over_that_time() -> None:
    async with SandboxServer(fast_config(reply_seconds=0.6)) as sandbox:
        ws, _ = await authed(sandbox.url)
        loop = asyncio.get_running_loop()
        stamps: list[float] = []
        await ws.send(json.dumps({"type": "message", "text": "milk"}))
        while (frame := await recv(ws))["type"] != "response_complete":
            if frame["type"] == "text_delta":
                stamps.append(loop.time())
        # Paced evenly: the first delta to the last spans most of the reply's time (the last pause follows it).
        assert len(stamps) > 2
        assert stamps[-1] - stamps[0] >= 0.6 * (len(stamps) - 1) / len(stamps) - 0.05
        await ws.close()


async def test_conversation_cap_per_day() -> None:
    async with SandboxServer(fast_config(conversations_per_user_per_day=1)) as sandbox:
        first, _ = await authed(sandbox.url, token="sk_test_cap", user_id="u1")
        ws = await connect(sandbox.url)
        await ws.send(json.dumps({"type": "auth", "token": "sk_test_cap", "user_id": "u1"}))
        assert await recv(ws) == {"type": "auth_ok"}
        assert await recv(ws) == {"type": "error", "code": "user_conversation_limit", "limit": 1}
        assert (await close_code(ws))[0] == 1008
        other_user, started = await authed(sandbox.url, token="sk_test_cap", user_id="u2")
        assert started["type"] == "conversation_started"
        await first.close()
        await other_user.close()


# Turns --------------------------------------------------------------------------------------------------------


async def test_search_turn_frame_order(server: SandboxServer) -> None:
    ws, started = await authed(server.url)
    frames = await turn(ws, {"type": "message", "text": "Show me milk", "conversation_id": started["conversation_id"]})
    assert types(frames) == [
        "status",
        "status",
        "status",
        "text_delta",
        "text_end",
        "product_cards",
        "quick_replies",
        "response_complete",
    ]
    assert [f["code"] for f in frames if f["type"] == "status"] == ["thinking", "searching", "checking_prices"]
    assert all(1 <= len(f["delta"]) <= 12 for f in frames if f["type"] == "text_delta")
    cards = next(f for f in frames if f["type"] == "product_cards")["items"]
    assert cards[0]["sku"] == "milk-001"
    assert cards[0]["promo_label"] == "-15%"
    assert cards[0]["image_url"] == "/static/chat/sandbox/products/milk-001.svg"
    assert "Milk" in text_of(frames)
    assert frames[-1] == {"type": "response_complete", "conversation_id": started["conversation_id"]}
    for frame in frames:  # every frame reads back through the shared protocol layer
        parse_server(json.dumps(frame))
    await ws.close()


async def test_add_to_cart_action_emits_event_and_whole_cart(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    await turn(ws, wire(actions.add_to_cart("bread-001", 1)))
    frames = await turn(ws, wire(actions.add_to_cart("milk-001", 2)))
    assert types(frames)[-4:] == ["text_end", "event", "cart_changed", "response_complete"]
    event = next(f for f in frames if f["type"] == "event")
    assert event["event"] == {"type": "item_selected", "sku": "milk-001", "name": "Молоко 2,5% 900 г", "quantity": 2,
                              "price": 36.5}  # fmt: skip
    changed = parse_server(json.dumps(next(f for f in frames if f["type"] == "cart_changed")))
    assert isinstance(changed, CartChanged)
    assert changed.action == "item_selected"
    assert changed.sku == "milk-001"
    assert changed.quantity == 2
    assert [item.sku for item in changed.items] == ["bread-001", "milk-001"]
    assert changed.total == Decimal("28.50") + 2 * Decimal("36.50")  # the promo price wins
    await ws.close()


async def test_cart_from_text_in_both_languages(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    uk = await turn(ws, {"type": "message", "text": "додай два молока"})
    changed = next(f for f in uk if f["type"] == "cart_changed")
    assert (changed["sku"], changed["quantity"]) == ("milk-001", 2)
    assert "Додав" in text_of(uk)
    en = await turn(ws, {"type": "message", "text": "add 1.5 kg potatoes"})
    changed = next(f for f in en if f["type"] == "cart_changed")
    assert (changed["sku"], changed["quantity"], changed["total"]) == ("potato-001", 1.5, 110.35)
    assert "Added" in text_of(en)
    removed = await turn(ws, {"type": "message", "text": "remove milk"})
    assert next(f for f in removed if f["type"] == "event")["event"]["type"] == "item_removed"
    cleared = await turn(ws, {"type": "message", "text": "очисти кошик"})
    changed = next(f for f in cleared if f["type"] == "cart_changed")
    assert (changed["action"], changed["items"], changed["total"]) == ("cart_cleared", [], 0)
    await ws.close()


async def test_invalid_quantity_and_unknown_sku_change_nothing(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    for action in (actions.add_to_cart("potato-001", "0.25"), actions.add_to_cart("nope-404", 1)):
        frames = await turn(ws, wire(action))
        assert "cart_changed" not in types(frames)
        assert text_of(frames)
    await ws.close()


async def test_recipe_checklist_and_submit(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    frames = await turn(ws, {"type": "message", "text": "рецепт борщу"})
    assert types(frames) == [
        "status",
        "status",
        "text_delta",
        "text_end",
        "ingredient_checklist",
        "text_delta",
        "text_end",
        "response_complete",
    ]
    checklist = next(f for f in frames if f["type"] == "ingredient_checklist")
    assert checklist["servings"] == 6
    assert checklist["title"] == "Український борщ"
    chosen = [item for item in checklist["items"] if item["checked"]][:3]
    submitted = await turn(ws, actions.checklist_submit(item["id"] for item in chosen).to_dict())
    changes = [f for f in submitted if f["type"] == "cart_changed"]
    assert len(changes) == 3
    assert [i["sku"] for i in changes[-1]["items"]] == [item["sku"] for item in chosen]
    await ws.close()


async def test_quick_reply_keeps_session_language(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    frames = await turn(ws, {"type": "message", "text": "яйця"})
    replies = next(f for f in frames if f["type"] == "quick_replies")["replies"]
    add = next(reply for reply in replies if reply["value"].startswith("додай"))
    added = await turn(ws, actions.quick_reply(add["value"], add["label"]).to_dict())
    assert next(f for f in added if f["type"] == "cart_changed")["sku"] == "eggs-001"
    assert "Додав" in text_of(added)
    await ws.close()


async def test_resume_restores_cart_and_pending_ui(server: SandboxServer) -> None:
    ws, started = await authed(server.url)
    conversation_id = started["conversation_id"]
    await turn(ws, wire(actions.add_to_cart("cheese-001", "0.3")))
    search = await turn(ws, {"type": "message", "text": "bananas"})
    pending = next(f for f in search if f["type"] == "quick_replies")
    await ws.close()
    await server.wait_for_connections(0)
    ws, restored = await authed(server.url, conversation_id=conversation_id)
    assert restored["type"] == "session_restored"
    assert restored["conversation_id"] == conversation_id
    assert [(i["sku"], i["quantity"]) for i in restored["selected_items"]] == [("cheese-001", 0.3)]
    assert restored["total"] == 116.7
    assert await recv(ws) == pending
    await ws.close()
    unknown, fresh = await authed(server.url, conversation_id="conv_0000000000000000")
    assert fresh["type"] == "conversation_started"
    assert fresh["conversation_id"] != "conv_0000000000000000"
    await unknown.close()


async def test_expired_session_starts_a_new_conversation() -> None:
    now = [0.0]
    async with SandboxServer(fast_config(session_ttl=10.0, clock=lambda: now[0])) as sandbox:
        ws, started = await authed(sandbox.url)
        await ws.close()
        now[0] = 11.0
        ws, again = await authed(sandbox.url, conversation_id=started["conversation_id"])
        assert again["type"] == "conversation_started"
        assert again["conversation_id"] != started["conversation_id"]
        await ws.close()


# Limits and errors ------------------------------------------------------------------------------------------------


async def test_rate_limit_with_retry_after() -> None:
    now = [100.0]
    config = fast_config(messages_per_window=2, window_seconds=60.0, clock=lambda: now[0])
    async with SandboxServer(config) as sandbox:
        ws, _ = await authed(sandbox.url)
        await turn(ws, {"type": "message", "text": "milk"})
        now[0] = 110.0
        await ws.send(json.dumps({"type": "ping"}))  # keepalive does not count
        assert await recv(ws) == {"type": "pong"}
        await turn(ws, {"type": "message", "text": "eggs"})
        now[0] = 130.5
        await ws.send(json.dumps({"type": "message", "text": "bread"}))
        assert await recv(ws) == {"type": "error", "code": "rate_limit_exceeded", "retry_after": 30}
        now[0] = 160.0  # the first message has aged out
        frames = await turn(ws, {"type": "message", "text": "bread"})
        assert "product_cards" in types(frames)
        await ws.close()


async def test_message_too_large_keeps_socket_open() -> None:
    async with SandboxServer(fast_config(max_frame_bytes=1024)) as sandbox:
        ws, _ = await authed(sandbox.url)
        await ws.send(json.dumps({"type": "message", "text": "я" * 1000}))
        assert await recv(ws) == {"type": "error", "code": "message_too_large", "max_size": 1024}
        assert "product_cards" in types(await turn(ws, {"type": "message", "text": "milk"}))
        await ws.close()


async def test_default_limit_is_64_kib(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    await ws.send(json.dumps({"type": "message", "text": "x" * (70 * 1024)}))
    assert await recv(ws) == {"type": "error", "code": "message_too_large", "max_size": 65536}
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        "garbage{",
        b"\x00\x01binary",
        '["a", "list"]',
        json.dumps({"type": "teleport"}),
        json.dumps({"type": "message"}),
        json.dumps({"type": "message", "text": "   "}),
        json.dumps({"type": "action", "action": "fly"}),
        json.dumps({"type": "action", "action": "add_to_cart"}),
        json.dumps({"type": "action", "action": "add_to_cart", "sku": "milk-001", "quantity": "two"}),
        json.dumps({"type": "auth", "token": "pk_test_again"}),
    ],
)
async def test_invalid_frames_get_invalid_json(server: SandboxServer, frame: str | bytes) -> None:
    ws, _ = await authed(server.url)
    await ws.send(frame)
    assert await recv(ws) == {"type": "error", "code": "invalid_json"}
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


async def test_agent_busy_while_a_turn_is_held(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    server.pause_turns()
    await ws.send(json.dumps({"type": "message", "text": "milk"}))
    before = await until(ws, "text_delta")
    await ws.send(json.dumps({"type": "action", "action": "add_to_cart", "sku": "milk-001", "quantity": 1}))
    assert await recv(ws) == {"type": "error", "code": "agent_busy"}
    server.resume_turns()
    rest = await until(ws, "response_complete")
    assert "error" not in types(rest)
    assert "product_cards" in types(rest)
    assert text_of(before + rest).startswith("I found")
    await ws.close()


async def test_turn_timeout_sends_internal_error() -> None:
    async with SandboxServer(fast_config(turn_timeout=0.3)) as sandbox:
        ws, _ = await authed(sandbox.url)
        sandbox.pause_turns()
        await ws.send(json.dumps({"type": "message", "text": "milk"}))
        frames = await until(ws, "error")
        assert frames[-1] == {"type": "error", "code": "internal_error"}
        sandbox.resume_turns()
        assert "product_cards" in types(await turn(ws, {"type": "message", "text": "milk"}))
        await ws.close()


# Keepalive and fault injection -----------------------------------------------------------------------------------


async def test_server_ping_pong_and_pong_timeout() -> None:
    async with SandboxServer(fast_config(ping_interval=0.05, pong_timeout=0.3)) as sandbox:
        ws, _ = await authed(sandbox.url)
        assert await recv(ws) == {"type": "ping"}
        await ws.send(json.dumps({"type": "pong"}))
        assert await recv(ws) == {"type": "ping"}  # still open after answering; now stay silent
        assert await close_code(ws) == (1011, "pong timeout")


async def test_json_pongs_switched_off_leave_a_json_ping_unanswered_but_not_a_protocol_ping() -> None:
    async with SandboxServer(fast_config(json_pongs=False)) as sandbox:
        ws, _ = await authed(sandbox.url)
        await ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(await ws.ping(), 3)  # the protocol pong comes, after the JSON ping was read
        await ws.send(json.dumps({"type": "message", "text": "milk"}))
        assert (await recv(ws))["type"] != "pong"  # the next frame is the turn's: no JSON pong came before it
        await ws.close()


async def test_pings_count_against_the_message_window_when_switched_on() -> None:
    async with SandboxServer(fast_config(pings_count=True, messages_per_window=2)) as sandbox:
        ws, _ = await authed(sandbox.url)
        for _ in range(2):
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
        await ws.send(json.dumps({"type": "message", "text": "milk"}))
        refused = await recv(ws)
        assert refused["code"] == "rate_limit_exceeded" and refused["retry_after"] >= 1
        await ws.close()


async def test_drop_all_and_send_raw(server: SandboxServer) -> None:
    ws, _ = await authed(server.url)
    assert server.connections == 1
    await server.send_raw_to_all('{"type":"meal_plan","days":[]}')
    assert await recv(ws) == {"type": "meal_plan", "days": []}
    await server.drop_all(1012, "restart")
    assert await close_code(ws) == (1012, "restart")
    await asyncio.wait_for(server.wait_for_connections(0), 3)
