"""The conversation admin: who may see it, what the pages show, search, filters, exports and query bounds."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.admin import POLL_SECONDS, ConversationAdminQuerySet, build_entry
from chat.models import Conversation, Message, Turn
from chat.persistence import store

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:chat_conversation_changelist"
HOSTILE_NAME = '<img src=x onerror="alert(1)">Сир'


# --- fixtures -------------------------------------------------------------------------------------------------


def make_user(username: str, *, staff: bool = True, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, is_staff=staff)  # no password: force_login, no hashing
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="chat"))
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    """Staff with only the view permission: what a support agent gets."""
    return client_for(make_user("viewer", perms=("view_conversation",)))


@pytest.fixture
def superuser_client() -> Client:
    return client_for(User.objects.create_superuser("root", password=None))


def add_message(conversation: Conversation, role: str, kind: str, text: str = "", **extra: Any) -> Message:
    """A stored message, its text indexed for the search the way the relay's store does it."""
    conversation.last_seq += 1
    conversation.save(update_fields=["last_seq"])
    if role == "user" or kind == "text":
        store.index_text(conversation.pk, text)
    return Message.objects.create(
        conversation=conversation, seq=conversation.last_seq, role=role, kind=kind, text=text, **extra
    )


def make_conversation(**fields: Any) -> Conversation:
    """A conversation with one turn: the list hides those without any by default."""
    defaults: dict[str, Any] = {"user_id": "user-1", "store_id": "store-a", "turn_count": 1}
    return Conversation.objects.create(**(defaults | fields))


@pytest.fixture
def full_chat() -> Conversation:
    """A conversation holding every kind of message, including hostile payload values."""
    conversation = make_conversation(
        upstream_id="up-123",
        user_id="shopper-42",
        title="Хочу <script>alert('u')</script> молоко",
        turn_count=2,
        cart=[{"sku": "milk-001", "name": "Молоко", "price": 42.9, "promo_price": 38.5, "quantity": 2, "unit": "pcs"}],
        cart_count=Decimal(2),
        cart_total=Decimal("77.00"),
    )
    add_message(conversation, "user", "text", "Хочу <script>alert('u')</script> молоко")
    add_message(conversation, "assistant", "text", "**Ось** що є:\n\n- молоко\n- [shop](javascript:alert(1))")
    add_message(
        conversation,
        "assistant",
        "product_cards",
        payload={
            "type": "product_cards",
            "items": [
                {
                    "sku": "milk-001",
                    "name": "Молоко 2,5%",
                    "brand": "Галичина",
                    "price": 42.9,
                    "promo_price": 38.5,
                    "promo_label": "-10%",
                    "image_url": "/static/chat/sandbox/products/milk-001.svg",
                    "unit": "pcs",
                },
                {"sku": "evil-1", "name": HOSTILE_NAME, "price": 10, "image_url": "javascript:alert(1)", "unit": "kg"},
            ],
        },
    )
    add_message(
        conversation,
        "assistant",
        "quick_replies",
        payload={
            "type": "quick_replies",
            "prompt": "Скільки?",
            "replies": [{"label": "Одне", "value": "one"}, {"label": "Два пакети", "value": "two"}],
            "used": "two",
        },
    )
    add_message(
        conversation,
        "assistant",
        "checklist",
        payload={
            "type": "ingredient_checklist",
            "title": "Борщ",
            "servings": 4,
            "items": [
                {"id": "i1", "name": "Буряк", "quantity": 0.5, "unit": "kg", "checked": True},
                {"id": "i2", "name": "Капуста", "checked": False},
            ],
            "submitted": ["i1"],
        },
    )
    add_message(
        conversation,
        "user",
        "action",
        "Додати: Молоко ×2",
        payload={"type": "action", "action": "add_to_cart", "sku": "milk-001", "quantity": 2},
    )
    add_message(
        conversation,
        "assistant",
        "cart",
        "item_selected",
        payload={
            "type": "cart_changed",
            "action": "item_selected",
            "sku": "milk-001",
            "name": "Молоко 2,5%",
            "quantity": 2,
            "price": 38.5,
            "items": [{"sku": "milk-001", "name": "Молоко 2,5%", "price": 38.5, "quantity": 2, "unit": "pcs"}],
            "total": 77,
        },
    )
    error = {"type": "error", "code": "rate_limited", "retry_after": 30}
    add_message(conversation, "system", "error", "rate_limited", payload=error)
    add_message(conversation, "assistant", "notice", "meal_plan", payload={"type": "meal_plan", "days": [{"d": 1}]})
    add_message(conversation, "assistant", "text", "Обірвана відп", complete=False)
    return conversation


def change_url(conversation: Conversation) -> str:
    return reverse("admin:chat_conversation_change", args=[conversation.pk])


def live_url(conversation: Conversation, after: int | None = None) -> str:
    url = reverse("admin:chat_conversation_transcript", args=[conversation.pk])
    return url if after is None else f"{url}?after={after}"


def listed_ids(response: Any) -> set[int]:
    return {conversation.pk for conversation in response.context["cl"].result_list}


# --- access ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["changelist", "change", "live"])
def test_anonymous_and_non_staff_are_sent_to_login(full_chat: Conversation, page: str) -> None:
    url = {"changelist": reverse(CHANGELIST), "change": change_url(full_chat), "live": live_url(full_chat)}[page]
    shopper = client_for(make_user("shopper", staff=False, perms=("view_conversation",)))
    for client in (Client(), shopper):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("page", ["changelist", "change", "live"])
def test_staff_without_view_permission_is_refused(full_chat: Conversation, page: str) -> None:
    url = {"changelist": reverse(CHANGELIST), "change": change_url(full_chat), "live": live_url(full_chat)}[page]
    client = client_for(make_user("intern"))
    assert client.get(url).status_code == 403


def test_nobody_can_add_or_edit(full_chat: Conversation, superuser_client: Client) -> None:
    assert superuser_client.get(reverse("admin:chat_conversation_add")).status_code == 403
    response = superuser_client.post(change_url(full_chat), {"user_id": "changed"})
    assert response.status_code == 403
    full_chat.refresh_from_db()
    assert full_chat.user_id == "shopper-42"
    page = superuser_client.get(change_url(full_chat)).content.decode()
    assert 'name="_save"' not in page


def test_delete_needs_the_delete_permission(full_chat: Conversation, viewer: Client) -> None:
    url = reverse("admin:chat_conversation_delete", args=[full_chat.pk])
    assert viewer.post(url, {"post": "yes"}).status_code == 403
    deleter = client_for(make_user("deleter", perms=("view_conversation", "delete_conversation")))
    assert deleter.post(url, {"post": "yes"}).status_code == 302
    assert not Conversation.objects.filter(pk=full_chat.pk).exists()
    assert not Message.objects.filter(conversation_id=full_chat.pk).exists()


# --- pages ----------------------------------------------------------------------------------------------------


def test_changelist_shows_the_columns(full_chat: Conversation, viewer: Client) -> None:
    response = viewer.get(reverse(CHANGELIST))
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Хочу &lt;script&gt;alert(&#x27;u&#x27;)&lt;/script&gt; молоко", "store-a", "2 позиції · 77,00"):
        assert text in page
    assert "<script>alert(" not in page
    assert response.context["cl"].show_full_result_count is False


def test_changelist_previews_a_long_first_message(viewer: Client) -> None:
    words = "Підкажіть, будь ласка, що приготувати на святковий стіл для великої родини без м'яса"
    make_conversation(title=words)
    page = viewer.get(reverse(CHANGELIST)).content.decode()
    preview = words[:69].rstrip()
    assert f'title="{words.replace(chr(39), "&#x27;")}">{preview.replace(chr(39), "&#x27;")}…</span>' in page


def test_changelist_hides_conversations_without_turns_by_default(viewer: Client) -> None:
    talked = make_conversation(title="молоко")
    empty = make_conversation(turn_count=0)
    assert listed_ids(viewer.get(reverse(CHANGELIST))) == {talked.pk}
    assert listed_ids(viewer.get(reverse(CHANGELIST), {"turns": "none"})) == {empty.pk}
    assert listed_ids(viewer.get(reverse(CHANGELIST), {"turns": "all"})) == {talked.pk, empty.pk}


def test_conversation_page_renders_every_kind(full_chat: Conversation, viewer: Client) -> None:
    response = viewer.get(change_url(full_chat))
    assert response.status_code == 200
    page = response.content.decode()
    # user text escaped, assistant markdown rendered and sanitised
    assert "&lt;script&gt;alert(&#x27;u&#x27;)&lt;/script&gt;" in page
    assert "<strong>Ось</strong>" in page
    assert 'href="javascript' not in page
    assert "[shop](javascript:alert(1))" in page  # a refused link stays visible as text
    # product cards with image, promo price and struck old price
    assert 'src="/static/chat/sandbox/products/milk-001.svg"' in page
    assert "38,50" in page
    assert '<s class="vz-old">42,90' in page
    assert "Галичина" in page
    # quick replies: the used one marked; checklist: the submitted item marked
    assert 'vz-chip vz-used">Два пакети' in page
    assert 'class="vz-submitted"' in page
    assert "Буряк" in page
    # action, cart change (in the transcript and the cart history), error, notice, cut-off reply
    assert "Додати: Молоко ×2" in page
    assert 'class="vz-timeline-row vz-cart-item_selected"' in page
    assert "rate_limited" in page
    assert "meal_plan" in page
    assert "vz-incomplete" in page
    # session key (a credential) is never shown
    assert "session_key" not in page


def test_hostile_product_values_are_inert(full_chat: Conversation, viewer: Client) -> None:
    page = viewer.get(change_url(full_chat)).content.decode()
    assert HOSTILE_NAME not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;Сир" in page
    assert "onerror=" not in page.replace("onerror=&quot;", "")
    assert 'src="javascript' not in page
    assert "<img src=x" not in page


def test_conversation_page_polls_the_live_endpoint(full_chat: Conversation, viewer: Client) -> None:
    page = viewer.get(change_url(full_chat)).content.decode()
    assert f'hx-get="{live_url(full_chat, full_chat.last_seq)}"' in page
    assert f'hx-trigger="every {POLL_SECONDS}s"' in page
    assert "django_htmx/htmx" in page  # the htmx script served by django-htmx


def test_live_endpoint_returns_only_newer_messages(full_chat: Conversation, viewer: Client) -> None:
    response = viewer.get(live_url(full_chat, after=full_chat.last_seq))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'hx-swap-oob="beforeend:#vz-transcript"' not in page
    assert f'hx-get="{live_url(full_chat, full_chat.last_seq)}"' in page

    newest = add_message(full_chat, "user", "text", "ще хліб <b>будь ласка</b>")
    page = viewer.get(live_url(full_chat, after=newest.seq - 1)).content.decode()
    assert 'hx-swap-oob="beforeend:#vz-transcript"' in page
    assert "ще хліб &lt;b&gt;будь ласка&lt;/b&gt;" in page
    assert f'id="vz-msg-{newest.seq}"' in page
    assert f'id="vz-msg-{newest.seq - 1}"' not in page
    assert f'hx-get="{live_url(full_chat, newest.seq)}"' in page
    assert 'id="vz-live-status"' in page


def test_live_endpoint_appends_cart_changes_to_the_history(full_chat: Conversation, viewer: Client) -> None:
    page = viewer.get(live_url(full_chat, after=0)).content.decode()
    assert 'hx-swap-oob="beforeend:#vz-cart-timeline"' in page


def test_live_endpoint_tolerates_a_bad_after(full_chat: Conversation, viewer: Client) -> None:
    assert viewer.get(live_url(full_chat) + "?after=abc").status_code == 200
    assert viewer.get(reverse("admin:chat_conversation_transcript", args=[999_999])).status_code in (302, 404)


# --- search and filters ---------------------------------------------------------------------------------------


@pytest.fixture
def three_chats() -> dict[str, Conversation]:
    now = timezone.now()
    old = make_conversation(user_id="u-old", store_id="store-b", upstream_id="up-old", status="closed")
    Conversation.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=40))
    old.refresh_from_db()
    carted = make_conversation(user_id="u-cart", store_id="store-a", cart_count=Decimal(3), cart_total=Decimal(99))
    plain = make_conversation(user_id="u-plain", store_id="store-a", status="failed")
    add_message(carted, "user", "text", "Потрібен гречаний мед")
    add_message(plain, "user", "text", "hello there")
    return {"old": old, "carted": carted, "plain": plain}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("u-cart", {"carted"}),
        ("up-old", {"old"}),
        ("гречаний", {"carted"}),
        ("HELLO", {"plain"}),
        ("he", set()),  # too short for a text search, and no id equals it
        ("u-", set()),  # ids match exactly, not by prefix
    ],
)
def test_search(three_chats: dict[str, Conversation], viewer: Client, query: str, expected: set[str]) -> None:
    response = viewer.get(reverse(CHANGELIST), {"q": query})
    assert listed_ids(response) == {three_chats[name].pk for name in expected}


def test_search_by_public_id(three_chats: dict[str, Conversation], viewer: Client) -> None:
    target = three_chats["plain"]
    response = viewer.get(reverse(CHANGELIST), {"q": str(target.public_id)}, HTTP_ACCEPT_LANGUAGE="en")
    assert listed_ids(response) == {target.pk}
    assert "any part of a message text" in response.content.decode()  # search_help_text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"store": "store-b"}, {"old"}),
        ({"status__exact": "failed"}, {"plain"}),
        ({"has_cart": "yes"}, {"carted"}),
        ({"has_cart": "no"}, {"old", "plain"}),
        ({"created_at__gte": "@today"}, {"carted", "plain"}),
    ],
)
def test_filters(
    three_chats: dict[str, Conversation], viewer: Client, params: dict[str, str], expected: set[str]
) -> None:
    if params.get("created_at__gte") == "@today":
        midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        week = {"created_at__gte": midnight - timedelta(days=7), "created_at__lt": midnight + timedelta(days=1)}
        params = {name: value.isoformat() for name, value in week.items()}
    response = viewer.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    assert listed_ids(response) == {three_chats[name].pk for name in expected}


def test_store_filter_lists_the_stores(three_chats: dict[str, Conversation], viewer: Client) -> None:
    page = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "?store=store-a" in page
    assert "?store=store-b" in page


def test_date_hierarchy_drills_down(three_chats: dict[str, Conversation], viewer: Client) -> None:
    today = timezone.localdate()
    response = viewer.get(reverse(CHANGELIST), {"created_at__year": today.year, "created_at__month": today.month})
    assert response.status_code == 200
    assert {three_chats["carted"].pk, three_chats["plain"].pk} <= listed_ids(response)


# --- query bounds ---------------------------------------------------------------------------------------------

#: Session, user, 2x permissions, store choices, filtered count, the page, date range, date hierarchy (periods
#: shown + 1 probes, here one day), plus the id check of a text search: 11,
#: whatever the number of rows (no per-row query, no unfiltered total count).
CHANGELIST_QUERY_BOUND = 11


@pytest.mark.parametrize("rows", [3, 60])
@pytest.mark.parametrize("params", [{}, {"q": "молоко", "has_cart": "yes", "store": "store-a"}])
def test_changelist_queries_do_not_grow_with_rows(
    viewer: Client, django_assert_max_num_queries: Callable[..., Any], rows: int, params: dict[str, str]
) -> None:
    for index in range(rows):
        conversation = make_conversation(user_id=f"u{index}", store_id=f"store-{'ab'[index % 2]}", cart_count=index)
        add_message(conversation, "user", "text", "молоко")
    with django_assert_max_num_queries(CHANGELIST_QUERY_BOUND):
        response = viewer.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    expected = min(rows, 50) if not params else min((rows - 1) // 2, 50)  # store-a with cart_count > 0
    assert len(response.context["cl"].result_list) == expected


@pytest.mark.parametrize("messages", [3, 60])
def test_conversation_page_queries_do_not_grow_with_messages(
    viewer: Client, django_assert_max_num_queries: Callable[..., Any], messages: int
) -> None:
    conversation = make_conversation()
    for index in range(messages):
        add_message(conversation, "user", "text", f"m{index}")
    with django_assert_max_num_queries(7):
        assert viewer.get(change_url(conversation)).status_code == 200
    with django_assert_max_num_queries(6):
        assert viewer.get(live_url(conversation, after=0)).status_code == 200


# --- export actions -------------------------------------------------------------------------------------------


def run_action(client: Client, action: str, conversations: list[Conversation]) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [c.pk for c in conversations], "index": 0},
    )


def test_export_json_action(full_chat: Conversation, three_chats: dict[str, Conversation], viewer: Client) -> None:
    response = run_action(viewer, "export_json", [full_chat, three_chats["carted"]])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment;" in response["Content-Disposition"]
    data = json.loads(b"".join(response.streaming_content))
    assert {item["public_id"] for item in data} == {str(full_chat.public_id), str(three_chats["carted"].public_id)}
    chat = next(item for item in data if item["public_id"] == str(full_chat.public_id))
    assert [m["seq"] for m in chat["messages"]] == list(range(1, full_chat.last_seq + 1))
    assert chat["messages"][2]["payload"]["items"][1]["name"] == HOSTILE_NAME


def test_export_csv_action(full_chat: Conversation, viewer: Client) -> None:
    response = run_action(viewer, "export_csv", [full_chat])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == full_chat.last_seq
    assert {row["conversation_user_id"] for row in rows} == {"shopper-42"}
    assert rows[0]["message_text"].startswith("Хочу")


# --- view-model units -----------------------------------------------------------------------------------------


def test_malformed_payloads_do_not_break_the_page() -> None:
    conversation = make_conversation()
    bad = [
        ("product_cards", {"items": "nope"}),
        ("product_cards", {"items": [1, None, {"price": "abc", "name": ["x"]}]}),
        ("quick_replies", {"replies": {"a": 1}}),
        ("checklist", {"items": [{"quantity": "Infinity"}, {"quantity": "1e999999"}], "submitted": "i1"}),
        ("cart", {"items": None, "total": True}),
        ("error", []),
        ("mystery", {"type": "x"}),
    ]
    for kind, payload in bad:
        message = add_message(conversation, "assistant", kind, payload=payload)
        entry = build_entry(message)
        assert entry.seq == message.seq
    client = client_for(User.objects.create_superuser("root2", password=None))
    assert client.get(change_url(conversation)).status_code == 200


# --- demo data ------------------------------------------------------------------------------------------------


def test_seed_demo_conversations_fills_the_list_and_the_insights(viewer: Client) -> None:
    call_command(
        "seed_demo_conversations", "--conversations", "30", "--messages", "180", "--batch-size", "7", "--seed", "3"
    )
    assert Conversation.objects.filter(user_id__startswith="demo-").count() == 30
    assert Message.objects.count() == 180
    for conversation in Conversation.objects.all():
        messages = list(conversation.messages.order_by("seq"))
        assert conversation.last_seq == len(messages) >= 1
        users = [m for m in messages if m.role == "user"]
        # One Turn row per shopper message, as the relay records them, and the search column filled.
        assert conversation.turn_count == len(users) == conversation.turns.count()
        assert {t.seq for t in conversation.turns.all()} == {m.seq for m in users}
        assert conversation.title == users[0].text[:200]
        assert users[0].text.casefold() in Conversation.objects.values_list("search_text", flat=True).get(
            pk=conversation.pk
        )
    assert Turn.objects.filter(day__isnull=True).count() == 0
    first = Conversation.objects.first()
    assert first is not None
    assert viewer.get(reverse(CHANGELIST)).status_code == 200
    assert viewer.get(change_url(first)).status_code == 200
    today = timezone.localdate()
    period = {"period": "custom", "start": (today - timedelta(days=100)).isoformat(), "end": today.isoformat()}
    response = viewer.get(reverse("admin_insights"), period)
    assert response.status_code == 200
    assert response.context["total"].turns == Turn.objects.count()
    assert response.context["total"].conversations == 30


@pytest.mark.parametrize("kind", ["year", "month", "day"])
def test_date_hierarchy_periods_match_djangos(kind: Literal["year", "month", "day"]) -> None:
    """The index-hopping ``datetimes()`` lists the same periods as Django's ``SELECT DISTINCT trunc(...)``."""
    base = timezone.now()
    offsets = [0, 0.01, 1, 2, 2.99, 31, 33, 60, 200, 400, 800]  # days back, crossing days, months and years
    for days in offsets:
        conversation = make_conversation()
        Conversation.objects.filter(pk=conversation.pk).update(created_at=base - timedelta(days=days))
    plain = Conversation.objects.filter(store_id="store-a")
    hopping = ConversationAdminQuerySet(model=Conversation, query=plain.query)
    assert list(hopping.datetimes("created_at", kind)) == list(plain.datetimes("created_at", kind))
