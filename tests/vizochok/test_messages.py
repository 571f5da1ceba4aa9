"""Parsing and writing frames: exact round trips, tolerance for unknown types, one exception for bad input."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.vizochok.messages import (
    CLIENT_TYPES,
    MAX_CARDS,
    MAX_FRAME_BYTES,
    MAX_NAME_CHARS,
    MAX_SERVER_FRAME_BYTES,
    SERVER_TYPES,
    Action,
    Auth,
    AuthOk,
    CartChanged,
    CartItem,
    ChecklistItem,
    ConversationStarted,
    ErrorMessage,
    Event,
    FrameTooLarge,
    IngredientChecklist,
    MalformedFrame,
    Ping,
    Pong,
    ProductCards,
    ProductItem,
    QuickReplies,
    QuickReply,
    ResponseComplete,
    SessionRestored,
    Status,
    TextDelta,
    TextEnd,
    UnknownMessage,
    UserMessage,
    check_size,
    parse_client,
    parse_server,
    to_json,
)

MILK = ProductItem(
    sku="milk-001",
    name="Молоко 2,5% 900 г",
    price=Decimal("42.90"),
    brand="Галичина",
    promo_price=Decimal("36.50"),
    promo_label="-15%",
    image_url="https://img.example/milk.png",
    unit="pcs",
    quantity_step=Decimal("1"),
    min_quantity=Decimal("1"),
    name_en="Milk 2.5% 900 g",
)
FARM_MILK = ProductItem(sku="milk-003", name="Молоко розливне", price=Decimal("38.00"), unit="l",
                        quantity_step=Decimal("0.5"), min_quantity=Decimal("1"))  # fmt: skip
LINE = CartItem(sku="milk-001", name="Молоко", price=Decimal("42.90"), quantity=Decimal("2"),
                promo_price=Decimal("36.50"), brand="Галичина")  # fmt: skip
WEIGHED = CartItem(sku="apples", name="Яблука", price=Decimal("29.99"), quantity=Decimal("1.3"), unit="kg")

CLIENT_FRAMES = [
    Auth(token="sk_test_secret", store_id="demo", user_id="u1", conversation_id="conv_1"),
    Auth(token="pk_test_x"),
    UserMessage(text="Покажи молоко", conversation_id="conv_1"),
    UserMessage(text="milk"),
    Action(action="add_to_cart", payload={"sku": "milk-001", "quantity": 2}),
    Action(action="checklist_submit", payload={"items": ["a", "b"]}),
    Ping(),
    Pong(),
]

SERVER_FRAMES = [
    AuthOk(),
    ConversationStarted(conversation_id="conv_1"),
    SessionRestored(conversation_id="conv_1", selected_items=(LINE, WEIGHED), total=Decimal("111.99")),
    SessionRestored(conversation_id="conv_2"),
    Status(code="searching"),
    Status(code="thinking", message="free text"),
    TextDelta(delta="Ось "),
    TextEnd(),
    ProductCards(items=(MILK, FARM_MILK)),
    QuickReplies(replies=(QuickReply("Дешевше", "cheaper"), QuickReply("Так", "yes")), prompt="Ще?"),
    IngredientChecklist(
        items=(
            ChecklistItem(id="flour", name="Борошно", quantity=Decimal("0.5"), unit="kg", sku="flour-01"),
            ChecklistItem(id="1", name="Сіль", checked=False),
        ),
        title="Борщ",
        servings=4,
    ),
    CartChanged(
        action="item_selected",
        items=(LINE,),
        total=Decimal("73.00"),
        sku="milk-001",
        name="Молоко",
        quantity=Decimal("2"),
        price=Decimal("36.50"),
    ),
    CartChanged(action="cart_cleared", items=(), total=Decimal(0)),
    ErrorMessage(code="rate_limit_exceeded", retry_after=45),
    ErrorMessage(code="user_conversation_limit", limit=20),
    ErrorMessage(code="message_too_large", max_size=65536),
    ResponseComplete(conversation_id="conv_1"),
    ResponseComplete(),
    Event(name="item_selected", data={"sku": "milk-001", "quantity": 2}),
    Ping(),
    Pong(),
]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda f: type(f).__name__)
def test_client_round_trip(frame: Any) -> None:
    assert parse_client(to_json(frame)) == frame


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_server_round_trip(frame: Any) -> None:
    assert parse_server(to_json(frame)) == frame


def test_every_frame_type_is_covered() -> None:
    assert {f.type for f in CLIENT_FRAMES} == set(CLIENT_TYPES)
    assert {f.type for f in SERVER_FRAMES} == set(SERVER_TYPES)


def test_bytes_parse_like_text() -> None:
    assert parse_server(b'{"type":"text_delta","delta":"hi"}') == TextDelta(delta="hi")


def test_auth_repr_hides_the_token() -> None:
    assert "secret" not in repr(CLIENT_FRAMES[0])
    assert "***" in repr(CLIENT_FRAMES[0])


# Decimal precision -----------------------------------------------------------------------------------------------


def test_prices_and_steps_are_exact_decimals() -> None:
    raw = '{"type":"product_cards","items":[{"sku":"a","name":"A","price":42.90,"quantity_step":0.1}]}'
    frame = parse_server(raw)
    assert isinstance(frame, ProductCards)
    assert frame.items[0].price == Decimal("42.90")
    assert frame.items[0].quantity_step == Decimal("0.1")
    assert frame.items[0].price * 3 == Decimal("128.70")  # a float would give 128.70000000000002


def test_decimals_are_written_as_json_numbers() -> None:
    data = json.loads(to_json(CartChanged(action="x", items=(WEIGHED,), total=Decimal("38.987"))))
    assert data["total"] == 38.987
    assert data["items"][0]["quantity"] == 1.3
    assert json.loads(to_json(TextDelta("x")))["type"] == "text_delta"
    assert '"quantity":2' in to_json(Action(action="add_to_cart", payload={"quantity": Decimal("2.0")}))


def test_cart_total_defaults_to_the_sum_with_promo_prices() -> None:
    frame = parse_server('{"type":"cart_changed","items":[{"sku":"a","price":10,"promo_price":8.5,"quantity":2}]}')
    assert isinstance(frame, CartChanged)
    assert frame.total == Decimal("17.0")
    assert frame.action == "updated"


def test_absurd_magnitudes_are_refused() -> None:
    with pytest.raises(MalformedFrame, match="range"):
        parse_server('{"type":"cart_changed","total":1e99999999}')
    with pytest.raises(MalformedFrame, match="range"):
        parse_server('{"type":"cart_changed","total":"1e400"}')


# Tolerance and refusals -----------------------------------------------------------------------------------------


def test_unknown_type_is_kept_whole() -> None:
    frame = parse_server('{"type":"meal_plan","days":[{"day":1}],"n":1.5}')
    assert frame == UnknownMessage(
        type="meal_plan", data={"type": "meal_plan", "days": [{"day": 1}], "n": Decimal("1.5")}
    )
    assert parse_server(to_json(frame)) == frame


def test_unknown_fields_are_ignored() -> None:
    assert parse_server('{"type":"text_delta","delta":"a","index":3}') == TextDelta(delta="a")


def test_server_type_is_unknown_to_the_client_parser() -> None:
    assert isinstance(parse_client('{"type":"auth_ok"}'), UnknownMessage)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        '"text"',
        "42",
        "null",
        "{}",
        '{"type":null}',
        '{"type":""}',
        '{"type":5}',
        '{"type":"text_delta"}',
        '{"type":"text_delta","delta":5}',
        '{"type":"product_cards","items":{}}',
        '{"type":"product_cards","items":[{"sku":"a","name":"A"}]}',
        '{"type":"product_cards","items":[{"sku":"a","name":"A","price":"cheap"}]}',
        '{"type":"cart_changed","total":NaN}',
        '{"type":"cart_changed","total":Infinity}',
        '{"type":"event"}',
        '{"type":"ingredient_checklist","items":[{"name":"a","checked":"yes"}]}',
        '{"type":"quick_replies","replies":[{}]}',
        "[" * 100_000 + "]" * 100_000,
        b"\xff\xfe\x00",
    ],
)
def test_malformed_frames(raw: str | bytes) -> None:
    with pytest.raises(MalformedFrame):
        parse_server(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Only the code was ever shown as an integer (reference §10.2): a fractional wait is rounded up, never dropped.
        ('{"type":"error","code":"rate_limit_exceeded","retry_after":12.5}', ErrorMessage("rate_limit_exceeded", 13)),
        ('{"type":"error","code":"rate_limit_exceeded","retry_after":"45"}', ErrorMessage("rate_limit_exceeded", 45)),
        ('{"type":"error","code":"user_message_limit","limit":true}', ErrorMessage("user_message_limit")),
        ('{"type":"error","code":"message_too_large","max_size":[1]}', ErrorMessage("message_too_large")),
        ('{"type":"error","code":"x","retry_after":-3,"message":{"a":1}}', ErrorMessage("x")),
        ('{"type":"error","code":"x","retry_after":1e300}', ErrorMessage("x")),
        ('{"type":"error","code":"x","retry_after":"sNaN","limit":"NaN","max_size":"-Infinity"}', ErrorMessage("x")),
        # An error whose code cannot be read is still the end of the turn, shown with the generic text.
        ('{"type":"error"}', ErrorMessage("unknown_error")),
        ('{"type":"error","code":42}', ErrorMessage("unknown_error")),
    ],
)
def test_an_error_frame_is_never_dropped_for_a_field_beside_its_code(raw: str, expected: ErrorMessage) -> None:
    """A dropped ``error`` left its turn waiting for the 120 s turn timeout, for a detail nobody needed."""
    assert parse_server(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type":"session_restored","selected_items":[]}', SessionRestored(conversation_id="")),
        ('{"type":"session_restored","conversation_id":"c","selected_items":["milk-001"]}', "unknown"),
        ('{"type":"session_restored","conversation_id":"c","selected_items":[{"sku":"m","quantity":2}]}', "unknown"),
        ('{"type":"session_restored","conversation_id":"c","selected_items":{"items":[]}}', "unknown"),
        ('{"type":"session_restored","conversation_id":"c"}', "unknown"),
        ('{"type":"session_restored","conversation_id":"c","selected_items":[],"total":"lots"}', "unknown"),
    ],
)
def test_a_session_restored_of_any_shape_is_read(raw: str, expected: SessionRestored | str) -> None:
    """The frame completes a resume (skipped, the resume timed out); a cart it cannot read whole is unknown, never
    guessed (a line without a price would have been stored at 0)."""
    frame = parse_server(raw)
    if expected == "unknown":
        assert frame == SessionRestored(conversation_id="c", cart_known=False)
    else:
        assert frame == expected


def test_an_entry_that_cannot_be_read_costs_only_itself() -> None:
    """Reference §9, §22 item 3: the shapes of cards, quick replies and checklist items are partly guessed. One
    card without a price dropped the whole frame (nine good cards with it); now only a frame with nothing readable
    in it is malformed."""
    cards = parse_server('{"type":"product_cards","items":[{"sku":"a","name":"A"},{"sku":"b","name":"B","price":1}]}')
    assert isinstance(cards, ProductCards) and [item.sku for item in cards.items] == ["b"]
    replies = parse_server('{"type":"quick_replies","replies":[{}, "Yes", 5]}')
    assert isinstance(replies, QuickReplies) and [reply.value for reply in replies.replies] == ["Yes"]
    checklist = parse_server('{"type":"ingredient_checklist","items":[{"name":"beet"},{"name":"a","checked":"yes"}]}')
    assert isinstance(checklist, IngredientChecklist) and [item.name for item in checklist.items] == ["beet"]


@pytest.mark.parametrize("named", ["c" * 101, "conv <b>", "", "conv\u00e9", "conv\nx"])
def test_an_id_no_conversation_can_have_is_not_read(named: str) -> None:
    """Ids are the upstream's (``conv_…``): one that cannot be stored (100 characters) or sent back as it came is
    read as none, never taken."""
    assert parse_server(json.dumps({"type": "response_complete", "conversation_id": named})) == ResponseComplete()
    started = parse_server(json.dumps({"type": "conversation_started", "conversation_id": named}))
    assert started == ConversationStarted(conversation_id="")
    for fine in ("conv_0a-9.Z:1", "9b2f0c4e-6d1a-4f7e-8a3b-2c5d7e9f1a0b", "conv_AbC+/x="):
        assert parse_server(json.dumps({"type": "response_complete", "conversation_id": fine})) == ResponseComplete(
            conversation_id=fine
        )


def test_oversize_frame_is_refused_before_parsing() -> None:
    raw = json.dumps({"type": "text_delta", "delta": "x" * MAX_SERVER_FRAME_BYTES})
    with pytest.raises(FrameTooLarge) as caught:
        parse_server(raw)
    assert caught.value.size == len(raw)
    assert caught.value.limit == MAX_SERVER_FRAME_BYTES
    with pytest.raises(FrameTooLarge) as caught:
        parse_client(json.dumps({"type": "message", "text": "x" * MAX_FRAME_BYTES}).encode())
    assert caught.value.limit == MAX_FRAME_BYTES


def test_a_server_frame_larger_than_a_client_may_send_is_read() -> None:
    """Reference §14 states 64 KB for what a client sends; a larger ``product_cards`` from the server was refused,
    and every card in it lost, without a word to the shopper."""
    items = [{"sku": f"sku-{n}", "name": "Milk " * 8, "price": 42.9} for n in range(2000)]
    items[0] = {**items[0], "name": "Milk" * 200, "description": "fresh " * 1000, "image_url": "https://x/" * 300}
    raw = json.dumps({"type": "product_cards", "items": items})
    assert len(raw) > 2 * MAX_FRAME_BYTES
    cards = parse_server(raw)
    assert isinstance(cards, ProductCards) and len(cards.items) == MAX_CARDS  # the first ones, bounded
    first = cards.items[0]
    assert (len(first.name), len(first.description or ""), first.image_url) == (MAX_NAME_CHARS, 4000, None)
    # Only a card list: a longer reply comes in more deltas.
    with pytest.raises(FrameTooLarge):
        parse_server(json.dumps({"type": "text_delta", "delta": "x" * MAX_FRAME_BYTES}))


def test_size_counts_utf8_bytes_not_characters() -> None:
    text = "ї" * (MAX_FRAME_BYTES // 2)  # 2 bytes each: exactly at the limit
    assert check_size(text) == text
    with pytest.raises(FrameTooLarge):
        check_size(text + "ї")


# Properties -----------------------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = [
    "conversation_id", "selected_items", "total", "code", "message", "delta", "items", "products", "replies",
    "options", "prompt", "question", "ingredients", "title", "recipe", "servings", "action", "sku", "name",
    "quantity", "price", "retry_after", "limit", "max_size", "event", "token", "store_id", "user_id", "text",
]  # fmt: skip
item_fields = ["sku", "name", "price", "promo_price", "quantity", "unit", "label", "value", "id", "checked", "type"]
items = st.dictionaries(st.sampled_from(item_fields), json_scalars, max_size=6)
field_values = json_values | st.lists(items | st.text(max_size=5), max_size=3) | items
frames = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    st.sampled_from([*sorted(set(SERVER_TYPES) | set(CLIENT_TYPES)), "meal_plan"]),
    st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, max_size=6),
)


def _parses_or_refuses(raw: str | bytes) -> None:
    for parse in (parse_server, parse_client):
        try:
            frame = parse(raw)
        except MalformedFrame:
            continue
        # Whatever parses writes back out as JSON that parses to the same frame.
        assert parse(to_json(frame)) == frame


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_malformed(raw: bytes) -> None:
    _parses_or_refuses(raw)


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_malformed(raw: str) -> None:
    _parses_or_refuses(raw)


@given(json_values)
def test_any_json_value_parses_or_raises_malformed(value: Any) -> None:
    _parses_or_refuses(json.dumps(value))


@settings(max_examples=300)
@given(frames)
def test_frame_shaped_objects_parse_or_raise_malformed_and_round_trip(value: dict[str, Any]) -> None:
    _parses_or_refuses(json.dumps(value, ensure_ascii=False))


def test_a_product_keeps_its_description_both_ways() -> None:
    """The catalog's description (reference §17) reaches the product sheet when the upstream sends it."""
    raw = '{"type":"product_cards","items":[{"sku":"a","name":"A","price":1,"description":"Fresh <b>milk</b>"}]}'
    cards = parse_server(raw)
    assert isinstance(cards, ProductCards)
    assert cards.items[0].description == "Fresh <b>milk</b>"
    assert json.loads(to_json(cards))["items"][0]["description"] == "Fresh <b>milk</b>"


# --- issue 24, item 1: strings no database stores ------------------------------------------------------------------


def test_lone_surrogates_become_replacement_characters_and_nuls_go_in_every_string() -> None:
    frame = parse_server(
        r'{"type":"product_cards","items":[{"sku":"s\u0000","name":"Milk \ud800","price":1,'
        r'"brand":"B\udfff\u0000","promo_label":"\ud83d\ude00 \ud83d"}]}'
    )
    assert isinstance(frame, ProductCards)
    item = frame.items[0]
    assert (item.sku, item.name, item.brand) == ("s", "Milk \ufffd", "B\ufffd")
    assert item.promo_label == "\U0001f600 \ufffd"  # a whole pair is one character and stays


def test_unknown_frames_and_events_are_cleaned_to_any_depth_keys_included() -> None:
    unknown = parse_server(r'{"type":"meal_plan","days":[{"name\u0000":{"dish":["soup \udc00"]}}]}')
    assert isinstance(unknown, UnknownMessage)
    assert unknown.data["days"] == [{"name": {"dish": ["soup \ufffd"]}}]
    event = parse_server(r'{"type":"event","event":{"type":"item_selected","name":"x\u0000\ud800"}}')
    assert event.data == {"name": "x\ufffd"}  # type: ignore[union-attr]
    delta = parse_server('{"type":"text_delta","delta":"plain \\\\u0000 text"}')  # an escaped backslash: no NUL
    assert delta == TextDelta(delta="plain \\u0000 text")
