"""The browser socket against the real sandbox over loopback, through the real ASGI application."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from websockets.asyncio.server import ServerConnection, serve

from chat.models import Conversation
from chat.turns.service import get_relay
from chat.turns.states import State
from tests.chat.conftest import READY, communicator, connected, make_shopper, receive_until, reload, send, stored

pytestmark = pytest.mark.django_db(transaction=True)


def first_sku(html: str) -> str:
    match = re.search(r'class="product-card" data-sku="([^"]+)"', html)
    assert match, "no product card in the frames"
    return match.group(1)


async def two_of_the_first_milk(tab: Any) -> str:
    """Ask for milk and add two of the first card; returns its sku once the cart change was shown."""
    await send(tab, kind="message", text="milk", key="k1")
    sku = first_sku(await receive_until(tab, READY))
    await send(tab, kind="add_to_cart", sku=sku, quantity="2", key="k2")
    await receive_until(tab, READY)
    return sku


async def test_a_turn_streams_renders_and_is_stored(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY)

    assert 'data-role="user"' in html and "milk" in html
    assert 'id="chat-status"' in html
    assert "product-card" in html and "quick-reply" in html
    messages = await stored(conversation)
    kinds = [(m.role, m.kind) for m in messages]
    assert kinds[0] == ("user", "text")
    assert ("assistant", "text") in kinds
    assert ("assistant", "product_cards") in kinds
    assert all(m.complete for m in messages)
    conversation = await reload(conversation)
    assert conversation.upstream_id.startswith("conv_")
    assert conversation.status == Conversation.Status.IDLE
    assert conversation.turn_count == 1


async def test_add_to_cart_updates_badge_and_stored_cart(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        sku = first_sku(await receive_until(tab, READY))
        await send(tab, kind="add_to_cart", sku=sku, quantity="2", key="k2")
        html = await receive_until(tab, READY)

    # Two of one product is one cart line: the badge and the stored count say 1.
    assert 'id="cart-badge"' in html and 'data-count="1"' in html
    assert 'data-change="item_selected"' in html
    conversation = await reload(conversation)
    assert conversation.cart_count == 1
    assert [item["sku"] for item in conversation.cart] == [sku]


async def test_second_turn_reuses_the_upstream_conversation(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        first = (await reload(conversation)).upstream_id
        await sandbox.drop_all(code=1001)  # the warm socket dies between turns
        await send(tab, kind="message", text="bread", key="k2")
        await receive_until(tab, READY)
    assert (await reload(conversation)).upstream_id == first


async def test_a_tab_that_outlives_the_warm_socket_resumes_the_same_upstream_conversation(
    sandbox: Any, settings: Any
) -> None:
    """The tab's socket stays while the upstream socket's idle grace runs out and its runner is forgotten: the next
    turn resumes the conversation the first one started (with its cart), not a new one. The tab's conversation was
    loaded before any upstream id existed, so the id must not come from it (a pause longer than the grace began a
    new upstream conversation: the assistant forgot everything and said the cart's milk was not in the cart)."""
    settings.VIZOCHOK_IDLE_GRACE = 0.05
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sku = await two_of_the_first_milk(tab)
        first = (await reload(conversation)).upstream_id
        runner = get_relay().existing(conversation.pk)
        assert runner is not None
        async with asyncio.timeout(10):
            await sandbox.wait_for_connections(0)  # the grace ran out: the upstream socket is closed
            assert await runner.settled() is State.IDLE
        assert get_relay().existing(conversation.pk) is None  # and its runner is forgotten
        await send(tab, kind="update_quantity", sku=sku, quantity="3", key="k3")
        html = await receive_until(tab, READY)
    assert 'data-change="quantity_updated"' in html, html
    assert (await reload(conversation)).upstream_id == first
    assert len(sandbox.sessions) == 1


@pytest.mark.parametrize(
    "reading",
    [
        {},  # the sandbox's own: whole cart lines (which do not carry the cards' stepper fields the stored lines have)
        {"restored_items": "skus"},  # selected_items as bare SKUs
        {"restored_items": "sku_quantity"},  # {sku, quantity}: no price, no name
        {"restored_without_id": True},  # the frame does not repeat the conversation's id
    ],
)
async def test_a_resume_survives_every_reading_of_session_restored(sandbox: Any, reading: dict[str, Any]) -> None:
    """Reference §8.3 and §22.6 leave ``session_restored``'s shape open. Whatever the reading, the resumed turn is
    served, and a restored cart the relay cannot read whole leaves the stored one as it was (before: the frame was
    skipped as malformed and the resume timed out, so every turn after a paused socket failed; or lines without a
    price were stored over the real cart)."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await two_of_the_first_milk(tab)
        before = await reload(conversation)
        for name, value in reading.items():
            setattr(sandbox.config, name, value)
        await sandbox.drop_all(code=1001)  # the warm socket dies: the next turn resumes on a new one
        await send(tab, kind="message", text="bread", key="k3")
        html = await receive_until(tab, READY)
    assert "chat-error" not in html, html
    after = await reload(conversation)
    assert after.upstream_id == before.upstream_id
    assert (after.cart, after.cart_count) == (before.cart, before.cart_count)
    messages = await stored(conversation)
    asked = next(n for n, m in enumerate(messages) if m.role == "user" and m.text == "bread")
    assert any(m.role == "assistant" and m.kind == "text" and m.complete for m in messages[asked:])


async def test_a_reply_replayed_on_resume_is_not_taken_for_the_next_turns(sandbox: Any) -> None:
    """Reference §22 item 6 leaves open whether a resumed session replays past messages. If it does, the replay
    (text, ``text_end``, ``response_complete``, before anything was sent) was read as the next turn's whole reply,
    and the real reply was set apart as strays."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        sandbox.config.replay_history = True
        await sandbox.drop_all(code=1001)
        await send(tab, kind="message", text="bread", key="k2")
        html = await receive_until(tab, READY)
    assert "Earlier" not in html and "product-card" in html, html
    messages = await stored(conversation)
    asked = next(n for n, m in enumerate(messages) if m.role == "user" and m.text == "bread")
    replies = [m.text for m in messages[asked:] if m.role == "assistant" and m.kind == "text"]
    assert replies and not any("Earlier" in text for text in replies), replies


@pytest.mark.parametrize("reading", ["ignored", "refused"])
async def test_a_conversation_resumes_wherever_the_upstream_reads_its_id(sandbox: Any, reading: str) -> None:
    """Reference §4.1, §22 item 7: the id may belong in ``auth`` (the mobile guide) or only in ``message`` (P1, P2),
    and ``auth`` may refuse a field it does not know. Either way the conversation a pause interrupted goes on: the
    same upstream conversation (its context, its cart), not a new one each time a socket opens (before: the new id
    was adopted, or every resume failed with "could not understand")."""
    sandbox.config.resume_in_auth = reading
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        sku = first_sku(await receive_until(tab, READY))
        first = (await reload(conversation)).upstream_id
        for n, fields in enumerate(
            [
                {"kind": "message", "text": "bread"},
                {"kind": "add_to_cart", "sku": sku, "quantity": "2"},  # an action, too, reaches that conversation
            ]
        ):
            await sandbox.drop_all(code=1001)  # the socket is gone: the next turn opens a new one
            await send(tab, key=f"k{n + 2}", **fields)
            html = await receive_until(tab, READY)
            assert "chat-error" not in html, html
    assert (await reload(conversation)).upstream_id == first
    assert sandbox.sessions[first].turns == 3
    assert list(sandbox.sessions[first].cart) == [sku]


async def test_an_auth_that_restores_the_conversation_it_named_is_believed_again(sandbox: Any) -> None:
    """What a process learnt of ``auth`` (that it does not resume) is given up once ``auth`` restores a conversation
    it named: an upstream restart that lost one conversation does not decide it for the life of the process."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        get_relay().resume.auth_restores = False  # as learnt from such a restart
        await sandbox.drop_all(code=1001)
        await send(tab, kind="message", text="bread", key="k2")
        await receive_until(tab, READY)
    assert get_relay().resume.auth_restores


async def test_a_conversation_that_ended_upstream_is_replaced_by_the_one_the_reply_names(sandbox: Any) -> None:
    """Where ``auth`` does not resume, a conversation that ended upstream (its TTL, a lost session) shows only in
    the reply: ``response_complete`` names the conversation the turn went to (§5). Keeping the dead id would have
    started a new conversation with every socket."""
    sandbox.config.resume_in_auth = "ignored"
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        await sandbox.drop_all(code=1001)
        await send(tab, kind="message", text="bread", key="k2")  # the process learns that auth does not resume
        await receive_until(tab, READY)
        first = (await reload(conversation)).upstream_id
        del sandbox.sessions[first]  # gone upstream
        await sandbox.drop_all(code=1001)
        await send(tab, kind="message", text="eggs", key="k3")
        await receive_until(tab, READY)
        now = (await reload(conversation)).upstream_id
        assert now != first and now in sandbox.sessions
        await sandbox.drop_all(code=1001)
        await send(tab, kind="message", text="cheese", key="k4")
        await receive_until(tab, READY)
    assert (await reload(conversation)).upstream_id == now
    assert sandbox.sessions[now].turns == 2


async def test_a_first_send_refused_before_its_turn_gives_its_place_in_line_back(sandbox: Any, settings: Any) -> None:
    """A new conversation is stored after its turn is let into the line (a refused flood stores nothing). When that
    failed (here: its id became somebody else's meanwhile), the place let in stayed reserved for its few seconds,
    and the address's next send was refused ``too_many_queued`` in front of an empty line."""
    settings.VIZOCHOK_QUEUED_PER_ADDRESS = 1
    key, conversation = await make_shopper()
    provisional = Conversation(user_id=conversation.user_id, store_id=conversation.store_id, public_id=uuid.uuid4())
    async with connected(key, provisional) as tab:
        await database_sync_to_async(Conversation.objects.create)(
            user_id="someone-else", store_id=conversation.store_id, public_id=provisional.public_id
        )
        await send(tab, kind="message", text="milk", key="k1")
        assert 'data-code="invalid_frame"' in await receive_until(tab, "chat-error")
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k2")
        html = await receive_until(tab, READY)
    assert "too_many_queued" not in html and "product-card" in html


async def test_a_message_the_upstream_rate_limits_is_sent_again_when_it_says(sandbox: Any) -> None:
    """Reference §11, §14, §22 item 10: 10 messages a minute per socket, and whether keepalive pings count is open
    (if they do, two a minute leave eight: the sandbox's ``pings_count``). A message refused with
    ``rate_limit_exceeded`` was not taken: it is sent again after the ``retry_after`` the upstream gave, within the
    turn, whatever filled the window, instead of failing the turn."""
    sandbox.config.messages_per_window, sandbox.config.window_seconds = 2, 1.0
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        for n, text in enumerate(["milk", "bread", "eggs"]):  # the third is over the upstream's window
            await send(tab, kind="message", text=text, key=f"k{n}")
            html = await receive_until(tab, READY)
            assert "chat-error" not in html, html
    assert sandbox.rate_limited >= 1


async def test_an_action_refused_for_the_id_the_relay_added_goes_again_without_it(settings: Any) -> None:
    """Where ``auth`` does not resume, an action names its conversation; a schema strict enough to refuse that field
    gets the action as built once more before the tap goes as words."""
    actions: list[dict[str, Any]] = []
    card = '{"type":"product_cards","items":[{"sku":"milk-1","name":"Milk","price":40}]}'

    async def strict(ws: ServerConnection) -> None:
        await ws.recv()  # auth
        await ws.send('{"type":"auth_ok"}')
        await ws.send('{"type":"conversation_started","conversation_id":"conv_strict"}')
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "action":
                actions.append(frame)
            if frame["type"] == "action" and "conversation_id" in frame:
                await ws.send('{"type":"error","code":"invalid_json"}')
                continue
            for reply in (card, '{"type":"text_delta","delta":"Done."}', '{"type":"text_end"}'):
                await ws.send(reply)
            await ws.send('{"type":"response_complete"}')

    key, conversation = await make_shopper()
    async with serve(strict, "127.0.0.1", 0) as server:
        settings.VIZOCHOK_WS_URL = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
        try:
            async with connected(key, conversation) as tab:
                await send(tab, kind="message", text="milk", key="k1")
                await receive_until(tab, READY)
                get_relay().resume.auth_restores = False  # learnt as from an upstream that does not resume at auth
                await send(tab, kind="add_to_cart", sku="milk-1", quantity="1", key="k2")
                html = await receive_until(tab, READY)
        finally:
            await get_relay().close()
    assert "chat-error" not in html and "Done." in html
    assert ["conversation_id" in action for action in actions] == [True, False]
    assert not get_relay().actions_refused


async def test_choices_in_their_plain_shapes_are_shown(sandbox: Any) -> None:
    """Reference §9, §22 item 3: quick replies may be bare strings, a checklist's items bare names, cards under
    ``products`` (the sandbox's ``ui_shapes="plain"``). Each is shown as the objects would be."""
    sandbox.config.ui_shapes = "plain"
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY)
        assert "product-card" in html and 'class="quick-reply"' in html
        await send(tab, kind="message", text="borscht", key="k2")
        html = await receive_until(tab, READY)
        assert 'class="checklist"' in html and 'name="item"' in html
    kinds = {m.kind for m in await stored(conversation)}
    assert {"product_cards", "quick_replies", "checklist"} <= kinds


async def test_actions_the_upstream_refuses_go_as_words(sandbox: Any) -> None:
    """Reference §7, §22 item 2: the action schema is a guess. If the real API refuses it (``invalid_json``), every
    Add, quick reply and checklist failed with "could not understand"; the tap now goes again as a message in the
    shopper's words (the pill's text, "Add: Milk × 2"), and later taps go as words at once."""
    sandbox.config.refuse_actions = True
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        sku = first_sku(await receive_until(tab, READY))
        for n, quantity in enumerate(("2", "3")):
            await send(tab, kind="add_to_cart", sku=sku, quantity=quantity, key=f"a{n}")
            html = await receive_until(tab, READY)
            assert "chat-error" not in html, html
    messages = await stored(conversation)
    actions = [n for n, m in enumerate(messages) if m.kind == "action"]
    assert len(actions) == 2
    for start in actions:
        assert any(m.role == "assistant" and m.kind == "text" for m in messages[start + 1 : start + 4])
    assert sandbox.actions_refused == 1  # the second tap was not offered as an action again


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"kind": "add_to_cart", "sku": "never-shown", "quantity": "1"}, "unknown_product"),
        ({"kind": "nonsense"}, "unknown_kind"),
        ({"kind": "message", "text": "   "}, "empty_message"),
        ({"kind": "message", "text": "x" * 2001}, "message_too_long"),
        ({"kind": "remove_from_cart", "sku": "milk-001"}, "not_in_cart"),
        ({"kind": "quick_reply", "seq": "99", "value": "x"}, "choice_expired"),
        ({"kind": "undo_remove", "sku": "milk-001"}, "choice_expired"),  # nothing was removed
        ({"kind": "retry", "seq": "1"}, "retry_unavailable"),  # no turn to send again
    ],
)
async def test_checked_before_sending(sandbox: Any, fields: dict[str, Any], code: str) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, **fields)
        html = await receive_until(tab, "chat-error")
    assert f'data-code="{code}"' in html
    assert await stored(conversation) == []
    assert sandbox.connections == 0


async def test_stepper_limits_are_enforced_server_side(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        sku = first_sku(await receive_until(tab, READY))
        await send(tab, kind="add_to_cart", sku=sku, quantity="0.5", key="k2")
        html = await receive_until(tab, "chat-error")
    assert 'data-code="invalid_quantity"' in html


async def test_bad_browser_frames_get_an_error_and_the_socket_stays(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await tab.send_to(bytes_data=b"\x00\x01")
        assert 'data-code="invalid_frame"' in await receive_until(tab, "chat-error")
        await tab.send_to(text_data="{not json")
        assert 'data-code="invalid_frame"' in await receive_until(tab, "chat-error")
        await tab.send_to(text_data="[1, 2]")
        assert 'data-code="invalid_frame"' in await receive_until(tab, "chat-error")
        await tab.send_to(text_data='{"kind": "message", "text": "' + "x" * 20000 + '"}')
        assert 'data-code="frame_too_large"' in await receive_until(tab, "chat-error")
        await send(tab, kind="message", text="milk", key="k1")
        assert "product-card" in await receive_until(tab, READY)


async def test_a_resent_key_does_not_start_a_second_turn(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="same")
        await receive_until(tab, READY)
        await send(tab, kind="message", text="milk", key="same")
        await send(tab, kind="sync", after=0)
        await receive_until(tab, 'id="turn-state"')
    users = [m for m in await stored(conversation) if m.role == "user"]
    assert len(users) == 1
    assert (await reload(conversation)).turn_count == 1


async def test_one_turn_at_a_time_and_every_tab_sees_it(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    sandbox.pause_turns()
    async with connected(key, conversation) as first, connected(key, conversation) as second:
        await send(first, kind="message", text="milk", key="k1")
        await receive_until(second, 'data-state="busy"')
        await send(second, kind="message", text="bread", key="k2")
        assert 'data-code="agent_busy"' in await receive_until(second, "chat-error")
        sandbox.resume_turns()
        first_html = await receive_until(first, READY)
        second_html = await receive_until(second, READY)
    for html in (first_html, second_html):
        assert "product-card" in html
    assert len([m for m in await stored(conversation) if m.role == "user"]) == 1


async def test_a_late_tab_catches_up_with_sync(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
    async with connected(key, conversation) as late:
        await send(late, kind="sync", after=0)
        html = await receive_until(late, 'id="turn-state"')
    assert 'id="msg-1"' in html and "product-card" in html
    assert 'hx-swap-oob="beforeend:#chat-log"' in html


async def test_someone_elses_conversation_is_refused(sandbox: Any) -> None:
    key, _mine = await make_shopper("anon-me")
    _other_key, theirs = await make_shopper("anon-them")
    tab = communicator(key, theirs)
    accepted, code = await tab.connect()
    assert not accepted
    assert code == 4403


async def test_a_foreign_origin_is_refused(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    tab = communicator(key, conversation, origin=b"http://evil.example")
    accepted, _code = await tab.connect()
    assert not accepted


async def test_the_api_key_never_reaches_the_browser(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_API_KEY = "sk_test_super_secret_key_123"
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="borscht", key="k1")
        html = await receive_until(tab, READY)
        await send(tab, kind="sync", after=0)
        html += await receive_until(tab, 'id="turn-state"')
    assert "sk_test_super_secret_key_123" not in html


async def test_database_writes_per_turn_do_not_grow_with_the_reply(sandbox: Any) -> None:
    writes: list[str] = []

    def count_writes(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append(sql)
        return execute(sql, params, many, context)

    # Connections are per thread: the wrapper goes onto the connection of the thread that runs the relay's DB work.
    def install() -> None:
        connection.execute_wrappers.append(count_writes)

    def uninstall() -> None:
        connection.execute_wrappers.remove(count_writes)

    key, conversation = await make_shopper()
    results = []
    await database_sync_to_async(install)()
    try:
        async with connected(key, conversation) as tab:
            for number, text in enumerate(["milk", "borscht recipe please"]):
                before = len(await stored(conversation))
                writes.clear()
                await send(tab, kind="message", text=text, key=f"k{number}")
                await receive_until(tab, READY)
                messages = await stored(conversation)
                reply = max(len(m.text) for m in messages[before:] if m.role == "assistant")
                results.append((len(writes), len(messages) - before, reply))
    finally:
        await database_sync_to_async(uninstall)()
    for write_count, added, reply_chars in results:
        # Claiming the turn and storing the user's message, one update + insert per stored event, one update to end.
        assert write_count > 0  # the counter sees the relay's writes
        assert write_count <= 2 * added + 3, (write_count, added)
        assert reply_chars > write_count  # many tokens, few writes


async def test_an_upstream_drop_mid_reply_keeps_the_text_and_resumes(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        upstream_id = (await reload(conversation)).upstream_id
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k2")
        await receive_until(tab, "-text")  # the reply has started streaming
        await sandbox.drop_all(code=1011)
        html = await receive_until(tab, READY)
        sandbox.resume_turns()
        assert "Reconnecting" in html
        assert 'data-code="upstream_lost"' in html
        assert "The reply was interrupted." in html
        await send(tab, kind="message", text="bread", key="k3")
        assert "product-card" in await receive_until(tab, READY)
    cut = [m for m in await stored(conversation) if m.role == "assistant" and m.kind == "text" and not m.complete]
    assert len(cut) == 1
    assert cut[0].text
    assert (await reload(conversation)).upstream_id == upstream_id  # resumed, not a new conversation


async def test_an_auth_rejection_stops_and_says_so(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_API_KEY = "wrong_key"
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY)
    assert 'data-code="auth_failed"' in html
    assert (await reload(conversation)).status == Conversation.Status.IDLE


async def test_upstream_down_gives_a_clear_error(sandbox: Any, settings: Any) -> None:
    await sandbox.close()
    settings.VIZOCHOK_OPEN_RETRIES = 1
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY, timeout=10)
    assert "Reconnecting" in html
    assert 'data-code="upstream_unavailable"' in html
    users = [m for m in await stored(conversation) if m.role == "user"]
    assert [m.text for m in users] == ["milk"]  # what the shopper sent is kept


async def test_turns_queue_for_the_deployment_wide_socket_limit(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_MAX_CONNECTIONS = 1
    first_key, first = await make_shopper("anon-first")
    second_key, second = await make_shopper("anon-second")
    sandbox.pause_turns()
    async with connected(first_key, first) as tab_one, connected(second_key, second) as tab_two:
        await send(tab_one, kind="message", text="milk", key="a")
        await receive_until(tab_one, "-text")  # holds the only upstream socket, mid-reply
        await send(tab_two, kind="message", text="bread", key="b")
        waiting = await receive_until(tab_two, "You are first in line")
        assert 'id="chat-status"' in waiting and 'data-position="1"' in waiting
        assert sandbox.connections == 1
        sandbox.resume_turns()
        await receive_until(tab_one, READY)
        # The first conversation's warm socket is given up at once for the waiting turn, not after the grace.
        assert "product-card" in await receive_until(tab_two, READY)
    assert sandbox.connections <= 1


async def test_a_turn_that_waits_too_long_for_a_socket_says_so(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_MAX_CONNECTIONS = 1
    settings.VIZOCHOK_QUEUE_TIMEOUT = 0.2
    first_key, first = await make_shopper("anon-first")
    second_key, second = await make_shopper("anon-second")
    sandbox.pause_turns()
    async with connected(first_key, first) as tab_one, connected(second_key, second) as tab_two:
        await send(tab_one, kind="message", text="milk", key="a")
        await receive_until(tab_one, "-text")
        await send(tab_two, kind="message", text="bread", key="b")
        html = await receive_until(tab_two, READY)
        assert 'data-code="queue_timeout"' in html
        sandbox.resume_turns()
        await receive_until(tab_one, READY)


async def test_a_ping_is_answered_at_once_even_before_anything_is_stored(sandbox: Any) -> None:
    """The page's heartbeat: a conversation not stored yet answers too, and the answer stores nothing."""
    key, conversation = await make_shopper()
    await database_sync_to_async(conversation.delete)()  # a first-time shopper: nothing stored
    async with connected(key, conversation) as tab:
        await send(tab, type="ping", id=7)
        assert json.loads(await tab.receive_from(timeout=5)) == {"type": "pong", "id": 7}
        await send(tab, type="ping", id="nonsense")
        assert json.loads(await tab.receive_from(timeout=5)) == {"type": "pong", "id": None}
    assert not await database_sync_to_async(Conversation.objects.filter(public_id=conversation.public_id).exists)()


async def test_a_send_key_stored_before_is_acknowledged_not_ignored(sandbox: Any) -> None:
    """A tab resending its outbox after a reconnect learns that the server has it, and nothing is stored twice."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="outbox-1")
        assert 'data-key="outbox-1"' in await receive_until(tab, READY)  # the tab's own bubble says it is stored
        await send(tab, kind="message", text="milk", key="outbox-1")
        assert json.loads(await tab.receive_from(timeout=5)) == {"type": "stored", "key": "outbox-1"}
    assert [m.text for m in await stored(conversation) if m.role == "user"] == ["milk"]


async def test_a_resent_key_is_acknowledged_even_when_its_address_may_send_no_more(sandbox: Any, settings: Any) -> None:
    """The outbox resends a stored key after a reconnect: the line's admission must not refuse it (the page would
    give the words back to the composer although the server has them) nor spend the address's turn budget."""
    settings.VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS = 1
    settings.VIZOCHOK_TURN_BURST_PER_ADDRESS = 1
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="outbox-1")
        await receive_until(tab, READY)
        await send(tab, kind="message", text="milk", key="outbox-1")
        assert json.loads(await tab.receive_from(timeout=5)) == {"type": "stored", "key": "outbox-1"}
    assert [m.text for m in await stored(conversation) if m.role == "user"] == ["milk"]


async def test_undo_puts_back_the_line_a_remove_took(sandbox: Any) -> None:
    """The cart panel's undo (issue 16): the removed line comes back as it was, beside the lines that stayed."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        skus = re.findall(r'class="product-card" data-sku="([^"]+)"', await receive_until(tab, READY))[:2]
        await send(tab, kind="add_to_cart", sku=skus[0], quantity="2", key="k2")
        await receive_until(tab, READY)
        await send(tab, kind="add_to_cart", sku=skus[1], key="k3")
        await receive_until(tab, READY)
        await send(tab, kind="remove_from_cart", sku=skus[1], key="k4")
        assert 'data-change="item_removed"' in await receive_until(tab, READY)
        await send(tab, kind="undo_remove", sku=skus[1], key="k5")
        html = await receive_until(tab, READY)
    assert "chat-error" not in html
    conversation = await reload(conversation)
    assert sorted((item["sku"], str(item["quantity"])) for item in conversation.cart) == sorted(
        [(skus[0], "2"), (skus[1], "1")]
    )
