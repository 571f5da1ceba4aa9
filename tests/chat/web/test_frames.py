"""The browser's frames (``chat.web.frames``): each one read, each refusal, anything a browser may write, the socket.

The unit tests need neither Django nor a socket; the last test sends a malformed frame of every kind over the real
ASGI application and checks that each gets its refusal while the socket stays open, usable, and gives back its caps.
"""

from __future__ import annotations

import dataclasses
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.web import frames
from chat.web.frames import (
    AddToCart,
    ChecklistSubmit,
    Message,
    Ping,
    QuickReply,
    Rate,
    Refused,
    RemoveFromCart,
    Retry,
    Stop,
    Sync,
    UndoRemove,
    UpdateQuantity,
)

ROOT = Path(__file__).resolve().parents[3]


def parse(data: Any) -> Any:
    return frames.parse(json.dumps(data))


# --- every frame ---------------------------------------------------------------------------------------------------

PARSED = [
    ({"type": "ping", "id": 7}, Ping(id=7)),
    ({"type": "ping"}, Ping(id=None)),
    ({"type": "ping", "id": "nonsense"}, Ping(id=None)),  # a heartbeat is answered whatever it carries
    ({"type": "ping", "id": [7]}, Ping(id=None)),
    ({"kind": "sync", "after": 12}, Sync(after=12)),
    ({"kind": "sync", "after": "12", "bubble": "live-3-1", "offset": 40}, Sync(after=12, bubble="live-3-1", offset=40)),
    ({"kind": "sync"}, Sync()),
    ({"kind": "stop"}, Stop()),
    ({"kind": "stop", "key": "ignored", "extra": [1, {"a": None}]}, Stop()),  # unknown fields are ignored
    ({"kind": "rate", "seq": 4, "value": "up"}, Rate(seq=4, value="up")),
    (
        {"kind": "rate", "seq": "4", "value": "down", "reason": "other", "text": "late"},
        Rate(seq=4, value="down", reason="other", text="late"),
    ),
    ({"kind": "rate", "seq": 4, "value": "none", "reason": None, "text": None}, Rate(seq=4, value="none")),
    ({"kind": "retry", "seq": "9", "key": "k"}, Retry(seq=9, key="k")),
    ({"kind": "message", "text": "  milk \n", "key": "k1"}, Message(text="milk", key="k1")),
    ({"text": "milk"}, Message(text="milk")),  # a frame without a kind is a message
    ({"type": "other", "text": "milk"}, Message(text="milk")),  # only "ping" is a type
    ({"kind": "message", "text": "я" * 2000}, Message(text="я" * 2000)),
    ({"kind": "add_to_cart", "sku": "milk-001", "key": "k"}, AddToCart(sku="milk-001", key="k", quantity=Decimal(1))),
    ({"kind": "add_to_cart", "sku": "m", "quantity": "0,5"}, AddToCart(sku="m", quantity=Decimal("0.5"))),
    ({"kind": "add_to_cart", "sku": "m", "quantity": "2"}, AddToCart(sku="m", quantity=Decimal(2))),
    ({"kind": "add_to_cart", "sku": "m", "quantity": 0.3}, AddToCart(sku="m", quantity=Decimal("0.3"))),
    ({"kind": "add_to_cart", "sku": "m", "quantity": None}, AddToCart(sku="m", quantity=Decimal(1))),
    ({"kind": "update_quantity", "sku": "m", "quantity": "1.5"}, UpdateQuantity(sku="m", quantity=Decimal("1.5"))),
    ({"kind": "remove_from_cart", "sku": "m", "key": "k"}, RemoveFromCart(sku="m", key="k")),
    ({"kind": "undo_remove", "sku": "m"}, UndoRemove(sku="m")),
    ({"kind": "quick_reply", "seq": "3", "value": "more"}, QuickReply(seq=3, value="more")),
    ({"kind": "quick_reply", "seq": 3}, QuickReply(seq=3, value="")),  # no such pill: the consumer says so
    ({"kind": "checklist_submit", "seq": 5, "item": ["a", "b"]}, ChecklistSubmit(seq=5, item=("a", "b"))),
    ({"kind": "checklist_submit", "seq": 5, "item": "a"}, ChecklistSubmit(seq=5, item=("a",))),  # one box checked
    ({"kind": "checklist_submit", "seq": 5}, ChecklistSubmit(seq=5)),  # none checked: the consumer says so
]


@pytest.mark.parametrize(("data", "frame"), PARSED)
def test_every_frame_is_read_into_its_type(data: dict[str, Any], frame: frames.Frame) -> None:
    assert parse(data) == frame


def test_every_declared_frame_is_read() -> None:
    read = {type(frame) for _data, frame in PARSED}
    assert read == set(frames.FRAMES.values())
    assert {cls.KIND for cls in read} == set(frames.FRAMES)


def test_a_frame_is_frozen() -> None:
    frame = parse({"kind": "message", "text": "milk"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.text = "bread"


def test_strings_written_with_escapes_are_storable() -> None:
    """A lone surrogate or a NUL, which only an escape can write, cannot reach the database."""
    frame = frames.parse('{"kind": "message", "text": "a\\ud800b\\u0000c"}')
    assert frame == Message(text="a\ufffdbc")


# --- every refusal -------------------------------------------------------------------------------------------------

LONG = "x" * 300

REFUSED: list[tuple[Any, str, str, str]] = [
    # (raw text or a JSON value, code, problem, field)
    (b'{"kind": "stop"}', "invalid_frame", "binary", ""),
    (None, "invalid_frame", "binary", ""),
    ("{not json", "invalid_frame", "not_json", ""),
    ("", "invalid_frame", "not_json", ""),
    ('{"kind": "message"} trailing', "invalid_frame", "not_json", ""),
    ("[1, 2]", "invalid_frame", "not_an_object", ""),
    ('"message"', "invalid_frame", "not_an_object", ""),
    ("null", "invalid_frame", "not_an_object", ""),
    ('{"kind": "sync", "a": ' + "[" * 7000 + "]" * 7000 + "}", "invalid_frame", "not_json", ""),
    ('{"kind": "message", "text": "' + "x" * 17000 + '"}', "frame_too_large", "too_large", ""),
    ('{"kind": "message", "text": "' + "я" * 9000 + '"}', "frame_too_large", "too_large", ""),  # bytes, not chars
    ('{"kind": "add_to_cart", "sku": "m", "quantity": NaN}', "invalid_frame", "not_finite", ""),
    ('{"kind": "sync", "after": Infinity}', "invalid_frame", "not_finite", ""),
    ('{"kind": "sync", "after": -Infinity}', "invalid_frame", "not_finite", ""),
    ('{"kind": "message", "kind": "stop"}', "invalid_frame", "duplicate_key", ""),
    ('{"kind": "stop", "x": {"a": 1, "a": 2}}', "invalid_frame", "duplicate_key", ""),
    # Two keys that become one once made storable (a NUL dropped, a lone surrogate replaced) are two as well.
    ('{"kind": "message", "text": "a", "te\\u0000xt": "b"}', "invalid_frame", "duplicate_key", ""),
    ('{"kind": "message", "text": "a", "\\ud800": "x", "\\udfff": "y"}', "invalid_frame", "duplicate_key", ""),
    ({"kind": 5}, "invalid_frame", "not_a_string", "kind"),
    ({"kind": ["message"]}, "invalid_frame", "not_a_string", "kind"),
    ({"kind": "nonsense"}, "unknown_kind", "unknown_kind", "kind"),
    ({"kind": ""}, "unknown_kind", "unknown_kind", "kind"),
    # sync: numbers are ASCII digits, nothing else
    ({"kind": "sync", "after": "\u00b2"}, "invalid_frame", "not_a_number", "after"),  # '²': isdigit() says yes
    ({"kind": "sync", "after": "\u0661\u0662"}, "invalid_frame", "not_a_number", "after"),  # Arabic-Indic 12
    ({"kind": "sync", "after": " 12 "}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": "1_2"}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": -1}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": 1.0}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": True}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": 10**9}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": 10**400}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": "9" * 10}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": {"n": 1}}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "after": [1]}, "invalid_frame", "not_a_number", "after"),
    ({"kind": "sync", "offset": "x"}, "invalid_frame", "not_a_number", "offset"),
    ({"kind": "sync", "bubble": ["live-1-1"]}, "invalid_frame", "not_a_string", "bubble"),
    ({"kind": "sync", "bubble": LONG}, "invalid_frame", "too_long", "bubble"),
    # rate: every problem is the rating's own refusal
    ({"kind": "rate", "value": "up"}, "invalid_feedback", "missing", "seq"),
    ({"kind": "rate", "seq": "\u00b2", "value": "up"}, "invalid_feedback", "not_a_number", "seq"),
    ({"kind": "rate", "seq": True, "value": "up"}, "invalid_feedback", "not_a_number", "seq"),
    ({"kind": "rate", "seq": 4}, "invalid_feedback", "missing", "value"),
    ({"kind": "rate", "seq": 4, "value": ["up"]}, "invalid_feedback", "not_a_string", "value"),
    ({"kind": "rate", "seq": 4, "value": "down", "reason": {"a": 1}}, "invalid_feedback", "not_a_string", "reason"),
    ({"kind": "rate", "seq": 4, "value": "down", "text": 5}, "invalid_feedback", "not_a_string", "text"),
    ({"kind": "rate", "seq": 4, "value": "down", "text": "я" * 501}, "invalid_feedback", "too_long", "text"),
    # retry
    ({"kind": "retry", "key": "k"}, "retry_unavailable", "missing", "seq"),
    ({"kind": "retry", "seq": "\u0661", "key": "k"}, "retry_unavailable", "not_a_number", "seq"),
    ({"kind": "retry", "seq": 1, "key": 7}, "invalid_frame", "not_a_string", "key"),
    # message
    ({"kind": "message"}, "empty_message", "empty", "text"),
    ({"kind": "message", "text": " \n\t "}, "empty_message", "empty", "text"),
    # Nothing to read: zero-width characters, a soft hyphen, a BOM, an ideographic space.
    ({"kind": "message", "text": "\u200b\u2060\u00ad\ufeff\u3000"}, "empty_message", "empty", "text"),
    ({"kind": "message", "text": "x" * 2001}, "message_too_long", "too_long", "text"),
    ({"kind": "message", "text": ["milk"]}, "invalid_frame", "not_a_string", "text"),
    ({"kind": "message", "text": {"t": "milk"}}, "invalid_frame", "not_a_string", "text"),
    ({"kind": "message", "text": "milk", "key": "k" * 65}, "invalid_frame", "too_long", "key"),
    ({"kind": "message", "text": "milk", "key": ["k"]}, "invalid_frame", "not_a_string", "key"),
    # cart
    ({"kind": "add_to_cart"}, "unknown_product", "missing", "sku"),
    ({"kind": "add_to_cart", "sku": ""}, "unknown_product", "missing", "sku"),
    ({"kind": "add_to_cart", "sku": ["m"]}, "invalid_frame", "not_a_string", "sku"),
    ({"kind": "add_to_cart", "sku": LONG}, "invalid_frame", "too_long", "sku"),
    ({"kind": "update_quantity", "quantity": "2"}, "not_in_cart", "missing", "sku"),
    ({"kind": "remove_from_cart", "sku": 5}, "invalid_frame", "not_a_string", "sku"),
    ({"kind": "undo_remove"}, "choice_expired", "missing", "sku"),
    # choices
    ({"kind": "quick_reply", "value": "x"}, "choice_expired", "missing", "seq"),
    ({"kind": "quick_reply", "seq": "99x", "value": "x"}, "choice_expired", "not_a_number", "seq"),
    ({"kind": "quick_reply", "seq": 3, "value": 5}, "invalid_frame", "not_a_string", "value"),
    ({"kind": "quick_reply", "seq": 3, "value": "v" * 2001}, "choice_expired", "too_long", "value"),
    ({"kind": "checklist_submit", "item": ["a"]}, "choice_expired", "missing", "seq"),
    ({"kind": "checklist_submit", "seq": 5, "item": {"a": 1}}, "invalid_frame", "not_a_list", "item"),
    ({"kind": "checklist_submit", "seq": 5, "item": 7}, "invalid_frame", "not_a_list", "item"),
    ({"kind": "checklist_submit", "seq": 5, "item": ["a", 7]}, "invalid_frame", "not_a_string", "item"),
    ({"kind": "checklist_submit", "seq": 5, "item": [["a"]]}, "invalid_frame", "not_a_string", "item"),
    ({"kind": "checklist_submit", "seq": 5, "item": ["a", LONG]}, "invalid_frame", "not_a_string", "item"),
    ({"kind": "checklist_submit", "seq": 5, "item": ["i"] * 201}, "invalid_frame", "too_long", "item"),
]


@pytest.mark.parametrize(("raw", "code", "problem", "field"), REFUSED)
def test_every_refusal_has_its_code(raw: Any, code: str, problem: str, field: str) -> None:
    refused = frames.parse(raw if raw is None or isinstance(raw, str | bytes) else json.dumps(raw))
    assert isinstance(refused, Refused), refused
    assert (refused.code, refused.problem, refused.field) == (code, problem, field)


def test_the_refusals_are_the_declared_ones_and_each_is_tested() -> None:
    """Each frame's refusals are those it declares (the docs list them), and every code a refusal can have is both
    tested above and worded for the shopper."""
    from chat.presentation.texts import ERROR_TEXTS

    declared = {code for frame in frames.FRAMES.values() for code in frame.REFUSALS} | set(frames.COMMON_REFUSALS)
    tested = {code for _raw, code, _problem, _field in REFUSED}
    assert tested == declared
    assert declared <= set(ERROR_TEXTS)
    for raw, code, _problem, _field in REFUSED:
        if isinstance(raw, dict) and isinstance(raw.get("kind"), str) and raw["kind"] in frames.FRAMES:
            assert code in frames.FRAMES[raw["kind"]].REFUSALS + frames.COMMON_REFUSALS, raw


def test_a_refused_send_names_its_kind_and_a_cart_line_its_sku() -> None:
    """The consumer answers a refused send with the turn state, and a cart line's refusal is shown at the line."""
    refused = parse({"kind": "update_quantity", "sku": "milk-001", "key": "k" * 65})
    assert isinstance(refused, Refused)
    assert (refused.code, refused.kind, dict(refused.details)) == (
        "invalid_frame",
        "update_quantity",
        {"line": "milk-001"},
    )
    refused = parse({"kind": "add_to_cart", "sku": "milk-001", "key": 1})
    assert isinstance(refused, Refused) and refused.kind == "add_to_cart" and "line" not in refused.details
    refused = parse({"kind": "message", "text": "x" * 2001})
    assert isinstance(refused, Refused) and dict(refused.details) == {"limit": 2000}
    refused = frames.parse("{" * 3)
    assert isinstance(refused, Refused) and refused.kind == ""
    refused = frames.parse("x" * 20000)
    assert isinstance(refused, Refused) and dict(refused.details) == {"max_size": frames.MAX_BROWSER_FRAME}


@pytest.mark.parametrize(
    ("value", "quantity"),
    [
        (None, Decimal(1)),
        ("3", Decimal(3)),
        ("0.25", Decimal("0.25")),
        ("0,25", Decimal("0.25")),
        (2, Decimal(2)),
        (1.5, Decimal("1.5")),
        ("\u00b2", None),
        ("\u0661", None),  # Decimal() reads it; a client's number is ASCII
        ("1e3", None),
        ("1_000", None),
        # What the page's own check lets through (cards.parseQuantity trims and reads a bare mark): the old relay read
        # these too, and a shopper's ".5" kg must not be refused after the card took it.
        (" 2", Decimal(2)),
        ("2 ", Decimal(2)),
        (".5", Decimal("0.5")),
        (" 0,5", Decimal("0.5")),
        ("1.", Decimal(1)),
        (".", None),
        ("2 3", None),
        ("-1", None),
        (-1, None),
        (10**10, None),
        (1e300, None),
        (True, None),
        ("", None),
        ("1.2.3", None),
        (["2"], None),
        ({"q": 2}, None),
    ],
)
def test_a_quantity_is_read_as_the_page_writes_it(value: Any, quantity: Decimal | None) -> None:
    assert frames.quantity(value) == quantity
    frame = parse({"kind": "add_to_cart", "sku": "m", "quantity": value})
    assert isinstance(frame, AddToCart) and frame.quantity == quantity


def test_an_escape_deep_inside_nested_lists_is_refused_not_raised() -> None:
    """Cleaning escaped strings walks the frame: nesting the JSON parser takes (it recurses in C) could exhaust
    Python's recursion there, which was a relay_error and an ERROR line a browser could write at will."""
    raw = '{"kind": "message", "text": "x", "deep": ' + "[" * 700 + '"\\u0041"' + "]" * 700 + "}"
    refused = frames.parse(raw)
    assert isinstance(refused, frames.Refused) and refused.code == "invalid_frame"


def test_the_rating_limit_is_the_stored_one() -> None:
    from chat import feedback

    assert frames.MAX_RATING_TEXT_CHARS == feedback.TEXT_LIMIT


# --- anything a browser may write --------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)

#: A field of a declared frame, so the readers of every kind get values of every type.
FIELD_NAMES = sorted({field.name for frame in frames.FRAMES.values() for field in dataclasses.fields(frame)})
FRAME_LIKE = st.fixed_dictionaries(
    {"kind": st.sampled_from([*frames.FRAMES, "nonsense"]) | JSON},
    optional={name: JSON | st.sampled_from(["1", "0,5", "\u00b2", "x" * 3000]) for name in [*FIELD_NAMES, "type"]},
)


def read_or_refused(raw: str | bytes) -> None:
    result = frames.parse(raw)
    assert isinstance(result, Refused | frames.Frame), result
    if isinstance(result, Refused):
        assert result.code in frames.COMMON_REFUSALS or any(
            result.code in frame.REFUSALS for frame in frames.FRAMES.values()
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_any_json_value_is_a_frame_or_a_refusal(value: Any) -> None:
    read_or_refused(json.dumps(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FRAME_LIKE)
def test_any_frame_like_object_is_a_frame_or_a_refusal(value: dict[str, Any]) -> None:
    read_or_refused(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.text() | st.binary())
def test_any_text_is_a_frame_or_a_refusal(raw: str | bytes) -> None:
    read_or_refused(raw)


# --- the documentation and the senders ---------------------------------------------------------------------------


def test_the_docs_list_the_declared_frames() -> None:
    """docs/relay.md's "Browser frames" is written from the declarations; after a change, paste
    ``chat.web.frames.markdown()`` between its markers."""
    text = (ROOT / "docs" / "relay.md").read_text()
    begin, end = text.index(frames.DOC_BEGIN) + len(frames.DOC_BEGIN) + 1, text.index(frames.DOC_END)
    assert text[begin:end] == frames.markdown()


def test_every_kind_the_page_sends_is_declared() -> None:
    """The kinds the templates' ws-send forms and the page's scripts write, and the fields of those forms."""
    written: set[str] = set()
    for template in (ROOT / "templates").rglob("*.html"):
        html = template.read_text()
        for form in re.findall(r"<form[^>]*\bws-send\b.*?</form>", html, re.DOTALL):
            kinds = re.findall(r'name="kind" value="([a-z_]+)"', form)
            kind = kinds[0] if kinds else "message"
            written.add(kind)
            assert kind in frames.FRAMES, (template.name, kind)
            names = {field.name for field in dataclasses.fields(frames.FRAMES[kind])} | {"kind"}
            for name in re.findall(r'\bname="([a-z_]+)"', form):
                assert name in names, (template.name, kind, name)
    for script in (ROOT / "static" / "chat").glob("*.js"):
        for kind in re.findall(r'\bkind: "([a-z_]+)"', script.read_text()):
            written.add(kind)
            assert kind in frames.FRAMES, (script.name, kind)
    assert 'type: "ping"' in (ROOT / "static" / "chat" / "connection.js").read_text()
    assert written | {frames.Ping.KIND} == set(frames.FRAMES)


# --- over the socket ---------------------------------------------------------------------------------------------

#: A malformed frame of every kind but stop (which has no field to get wrong), the code it gets, and whether the
#: refusal ends with the turn state (a send's does; a sync's or a rating's does not).
MALFORMED: list[tuple[str, str, bool]] = [
    ('{"kind": "sync", "after": "\u00b2"}', "invalid_frame", False),
    ('{"kind": "rate", "seq": "\u00b2", "value": "up"}', "invalid_feedback", False),
    ('{"kind": "retry", "seq": [1], "key": "r"}', "retry_unavailable", True),
    ('{"kind": "message", "text": ["milk"], "key": "m"}', "invalid_frame", True),
    ('{"kind": "add_to_cart", "sku": {"a": 1}, "key": "a"}', "invalid_frame", True),
    ('{"kind": "update_quantity", "sku": "milk-001", "key": "' + "k" * 65 + '"}', "invalid_frame", True),
    ('{"kind": "remove_from_cart", "sku": 5}', "invalid_frame", True),
    ('{"kind": "undo_remove", "sku": ""}', "choice_expired", True),
    ('{"kind": "quick_reply", "seq": "\u0661", "value": "x"}', "choice_expired", True),
    ('{"kind": "checklist_submit", "seq": 5, "item": [1]}', "invalid_frame", True),
    ('{"kind": "add_to_cart", "sku": "m", "quantity": NaN}', "invalid_frame", True),
    ('{"kind": "message", "text": "milk", "text": "bread"}', "invalid_frame", True),
    ('{"kind": "nonsense"}', "unknown_kind", True),
]


def test_the_malformed_frames_cover_every_kind_but_stop() -> None:
    kinds = {json.loads(raw.replace("NaN", "0"), object_pairs_hook=dict)["kind"] for raw, _code, _state in MALFORMED}
    assert kinds >= set(frames.FRAMES) - {frames.Stop.KIND, frames.Ping.KIND}


@pytest.mark.django_db(transaction=True)
async def test_a_malformed_frame_of_each_kind_is_refused_and_the_socket_stays_usable(sandbox: Any) -> None:
    from tests.chat.conftest import READY, communicator, make_shopper, receive_until, send, stored
    from tests.chat.web.test_socket_exits import gauge, held_sockets

    key, conversation = await make_shopper("anon-frames")
    before = gauge()
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    try:
        await send(tab, type="ping", id={"not": "a number"})  # a heartbeat is answered, never refused
        assert json.loads(await tab.receive_from(timeout=5)) == {"type": "pong", "id": None}
        for n, (raw, code, with_state) in enumerate(MALFORMED, start=1):
            await tab.send_to(text_data=raw)
            refusal = await tab.receive_from(timeout=5)
            assert f'data-code="{code}"' in refusal, raw
            assert (READY in refusal) is with_state, raw
            assert ('data-sku="milk-001"' in refusal) is ("update_quantity" in raw), raw
            await send(tab, type="ping", id=n)  # the socket is open and answers the next frame
            assert json.loads(await tab.receive_from(timeout=5)) == {"type": "pong", "id": n}
        assert await stored(conversation) == []
        await send(tab, kind="message", text="milk", key="k1")  # and a real send still works
        assert "product-card" in await receive_until(tab, READY)
    finally:
        await tab.disconnect()
    assert held_sockets("anon-frames") == 0 and gauge() == before  # the socket gave back what it held
