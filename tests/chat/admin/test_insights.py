"""``/admin/insights/``: who may see it, the numbers it computes from Turn rows, its charts, tables and CSV."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from chat.admin import charts, insights
from chat.models import Conversation
from chat.persistence import store

pytestmark = pytest.mark.django_db

URL = reverse("admin_insights")
HOSTILE = '<script>alert("q")</script>'


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="chat"))
    return user


@pytest.fixture
def viewer() -> Client:
    return client_for(staff("viewer", "view_conversation"))


def at(days_ago: int, hour: int = 12) -> datetime:
    """A moment of a local day (the insights group turns by the day in the site's time zone)."""
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, time(hour)))


def turns(user: str, store_id: str, *rows: dict[str, Any]) -> Conversation:
    conversation = Conversation.objects.create(user_id=user, store_id=store_id, turn_count=len(rows))
    for seq, row in enumerate(rows, start=1):
        fields: dict[str, Any] = {"started_at": at(0), "first_token_ms": None, "duration_ms": None}
        fields |= {"outcome": "failed" if row.get("error_code") else "answered"} | row
        store.record_turn(conversation.pk, seq=seq, **fields)
    return conversation


@pytest.fixture
def week() -> None:
    """Four conversations of three shoppers in two stores: today, and one two days ago."""
    milk = [{"sku": "milk-001", "name": "Молоко 2,5%", "quantity": "2"}]
    bread = [{"sku": "bread-001", "name": "Хліб", "quantity": "1"}]
    turns(
        "u1",
        "s1",
        {"query": "Молоко", "had_cards": True, "first_token_ms": 500, "duration_ms": 2000},
        {"cart_adds": 1, "cart_total": Decimal("77.00"), "added": milk, "first_token_ms": 300, "duration_ms": 1000},
        {"query": "ще", "error_code": "rate_limit_exceeded", "duration_ms": 400},
    )
    turns(
        "u2",
        "s2",
        {"query": "кокосове молоко", "first_token_ms": 700, "duration_ms": 3000},
        {"query": "Кокосове  молоко ", "first_token_ms": 900, "duration_ms": 5000},
    )
    turns(
        "u1",
        "s1",
        {"cart_adds": 1, "cart_total": Decimal("28"), "added": bread, "first_token_ms": 400, "duration_ms": 1500},
    )
    turns(
        "u3",
        "s1",
        {
            "query": "хліб",
            "error_code": "upstream_lost",
            "outcome": "interrupted",
            "started_at": at(2),
            "duration_ms": 9000,
        },
    )


def chart(response: Any, key: str) -> insights.Chart:
    found: insights.Chart = next(c for c in response.context["charts"] if c.key == key)
    return found


def today_row(found: insights.Chart) -> list[Any]:
    return next(row for row in found.raw if row[0] == timezone.localdate().isoformat())


def test_runs_on_the_expected_database() -> None:
    assert connection.vendor == os.environ.get("VIZOCHOK_EXPECT_DB_VENDOR", connection.vendor)


# --- access -----------------------------------------------------------------------------------------------------


def test_only_staff_with_the_conversation_view_permission() -> None:
    assert Client().get(URL).status_code == 302
    shopper = client_for(User.objects.create_user("shopper", is_staff=False))
    assert reverse("admin:login") in shopper.get(URL)["Location"]
    intern = client_for(staff("intern"))
    assert intern.get(URL).status_code == 403
    assert intern.get(URL, {"csv": "activity"}).status_code == 403
    assert reverse("admin_insights") not in intern.get(reverse("admin:index")).content.decode()


def test_linked_from_the_admin_index_and_the_list(viewer: Client) -> None:
    assert f'href="{URL}"' in viewer.get(reverse("admin:index")).content.decode()
    assert f'href="{URL}"' in viewer.get(reverse("admin:chat_conversation_changelist")).content.decode()


# --- the numbers ------------------------------------------------------------------------------------------------


def test_period_totals(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "7"})
    assert response.status_code == 200
    total = response.context["total"]
    assert (total.conversations, total.shoppers, total.turns, total.adds, total.errors) == (4, 3, 7, 2, 2)
    assert total.converted == 2 and total.conversion == 50.0
    assert total.cart_value == Decimal("105.00")
    assert total.depth == {3: 1, 2: 1, 1: 2}
    page = response.content.decode()
    assert "50,0\u00a0%" in page and "105,00\u00a0₴" in page


def test_per_day_numbers(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "7"})
    assert len(chart(response, "activity").raw) == 7  # every day of the period, with or without turns
    assert today_row(chart(response, "activity"))[1:] == [3, 6]  # conversations, turns
    assert today_row(chart(response, "shoppers"))[1:] == [2]
    assert today_row(chart(response, "adds"))[1:] == [2]
    assert today_row(chart(response, "cart_value"))[1:] == [105.0]
    assert today_row(chart(response, "conversion"))[1:] == [pytest.approx(200 / 3)]
    two_days_ago = (timezone.localdate() - timedelta(days=2)).isoformat()
    assert next(row for row in chart(response, "activity").raw if row[0] == two_days_ago)[1:] == [1, 1]


def test_errors_by_code_per_day_with_localized_names(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "7"}, HTTP_ACCEPT_LANGUAGE="uk")
    errors = chart(response, "errors")
    assert errors.headers == ["День", "Забагато повідомлень", "Зв’язок утрачено"] or errors.headers == [
        "День",
        "Зв’язок утрачено",
        "Забагато повідомлень",
    ]
    by_name = dict(zip(errors.headers, today_row(errors), strict=True))
    assert by_name["Забагато повідомлень"] == 1.0 and by_name["Зв’язок утрачено"] == 0.0
    page = response.content.decode()
    assert "rate_limit_exceeded" in page  # the code, next to its name, in the legend
    assert "Забагато повідомлень одразу" in page  # and what the shopper read


def test_latency_median_and_p95(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "today"})
    # Today's times to first token 300, 400, 500, 700, 900 ms; durations 400, 1000, 1500, 2000, 3000, 5000 ms.
    assert today_row(chart(response, "first_token"))[1:] == [500, 900]
    assert today_row(chart(response, "duration"))[1:] == [1500, 5000]
    assert response.context["headline"]["first_token"] == {"median": 500, "p95": 900}
    week_long = viewer.get(URL, {"period": "7"})
    assert week_long.context["headline"]["duration"] == {"median": 2000, "p95": 9000}


def nearest_rank(values: list[int], share: int) -> int:
    """The definition, spelled out: the smallest value with at least ``share`` % of the values at or below it."""
    ordered = sorted(values)
    return next(v for v in ordered if 100 * sum(1 for o in ordered if o <= v) >= share * len(ordered))


def test_latency_of_a_period_is_ranked_over_all_its_days(viewer: Client) -> None:
    """The period's percentile is searched across the days' sorted values, not taken from any one day: days of
    different sizes, repeated values, a day without times and the period's extremes on different days."""
    by_day = {
        0: [5, 5, 5, 9000],
        1: [1, 700, 700, 700, 701, 20, 3000],
        2: [],
        3: [250] * 11 + [4],
        5: [999_999],
    }
    for days_ago, values in by_day.items():
        rows = [{"first_token_ms": v, "duration_ms": 2 * v, "started_at": at(days_ago)} for v in values]
        turns(f"u{days_ago}", "s1", *(rows or [{"started_at": at(days_ago)}]))
    response = viewer.get(URL, {"period": "7"})
    every = [v for values in by_day.values() for v in values]
    for share, name in ((50, "median"), (95, "p95")):
        assert response.context["headline"]["first_token"][name] == nearest_rank(every, share)
        assert response.context["headline"]["duration"][name] == nearest_rank([2 * v for v in every], share)
    first_token = chart(response, "first_token").raw
    for days_ago, values in by_day.items():
        row = next(r for r in first_token if r[0] == (timezone.localdate() - timedelta(days=days_ago)).isoformat())
        expected: list[int | str] = [nearest_rank(values, 50), nearest_rank(values, 95)] if values else ["", ""]
        assert row[1:] == expected, days_ago


def test_activity_counts_a_conversation_over_several_days_once(viewer: Client) -> None:
    """Per day a conversation counts on each day it had turns; over the period once, with all its turns (depth),
    its fullest cart after an add (not the sum of its days') and its shopper once."""
    turns(
        "u1",
        "s1",
        {"started_at": at(2), "cart_adds": 1, "cart_total": Decimal("10.50")},
        {"started_at": at(2), "cart_adds": 1, "cart_total": Decimal("30.25")},
        {"started_at": at(1), "cart_adds": 2, "cart_total": Decimal("20.00")},
        {"started_at": at(1), "cart_total": Decimal("99.00")},  # no add: its cart counts for nothing
        {"started_at": at(0)},
    )
    turns("u1", "s2", {"started_at": at(1)})
    turns("u2", "s1", {"started_at": at(0), "cart_adds": 1})  # an add without a known total
    days, total = insights.activity(insights.Scope(timezone.localdate() - timedelta(days=6), timezone.localdate()))
    day = timezone.localdate()
    assert days[day - timedelta(days=2)] == insights.Day(1, 2, 2, 1, Decimal("30.25"), 1)
    assert days[day - timedelta(days=1)] == insights.Day(2, 3, 2, 1, Decimal("20.00"), 1)
    assert days[day] == insights.Day(2, 2, 1, 1, Decimal("0.00"), 2)
    assert (total.conversations, total.turns, total.adds, total.converted, total.shoppers) == (3, 7, 5, 2, 2)
    assert total.cart_value == Decimal("30.25")
    assert total.depth == {5: 1, 1: 2}


def test_top_products_and_queries_without_products(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "7"})
    assert [row[:3] for row in chart(response, "products").raw] == [
        ["Молоко 2,5%", "milk-001", 1],
        ["Хліб", "bread-001", 1],
    ]
    queries = chart(response, "queries").raw
    assert [(text.casefold(), count) for text, count in queries] == [("кокосове молоко", 2)]


def test_top_products_count_every_turn_of_a_repeated_list(viewer: Client) -> None:
    """Identical ``added`` lists are unpacked once and weighted by their turns: the counts and quantities are
    still every turn's (here 3 milk adds of 2, 0.5 and 2 + 2, bread once, a quantity that is no number none)."""
    milk_two = [{"sku": "milk-001", "name": "Молоко", "quantity": "2"}]
    both = [
        {"sku": "milk-001", "name": "Молоко", "quantity": "0.5"},
        {"sku": "bread-001", "name": "Хліб", "quantity": "1"},
    ]
    odd = [{"sku": "salt-001", "name": "Сіль", "quantity": "a pinch"}]
    rows = [{"cart_adds": 1, "cart_total": Decimal(1), "added": added} for added in (milk_two, milk_two, both, odd)]
    turns("u1", "s1", *rows[:3])
    turns("u2", "s1", rows[0] | {"added": list(milk_two)}, rows[3])
    products = insights.top_products(insights.Scope(timezone.localdate(), timezone.localdate()))
    assert [(p.sku, p.adds, p.quantity) for p in products] == [
        ("milk-001", 4, Decimal("6.5")),
        ("salt-001", 1, Decimal(0)),  # ties by name: "Сіль" before "Хліб"
        ("bread-001", 1, Decimal(1)),
    ]


def test_store_filter(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "7", "store": "s2"})
    total = response.context["total"]
    assert (total.conversations, total.turns, total.adds, total.errors) == (1, 2, 0, 0)
    assert '<option value="s1">' in response.content.decode()


def test_today_and_custom_periods(week: None, viewer: Client) -> None:
    assert viewer.get(URL, {"period": "today"}).context["total"].conversations == 3
    two_days_ago = timezone.localdate() - timedelta(days=2)
    day = {"period": "custom", "start": two_days_ago.isoformat(), "end": two_days_ago.isoformat()}
    response = viewer.get(URL, day)
    assert response.context["total"].conversations == 1
    assert [row[0] for row in chart(response, "activity").raw] == [two_days_ago.isoformat()]


@pytest.mark.parametrize(
    "params",
    [
        {"period": "custom", "start": "2026-05-10", "end": "2026-05-01"},
        {"period": "custom", "start": "2020-01-01", "end": "2026-01-01"},
        {"period": "custom", "start": "2026-05-10"},
        {"period": "custom", "start": "not a date", "end": "2026-05-01"},
        {"period": "forever"},
    ],
)
def test_a_bad_period_says_so_and_shows_the_last_week(viewer: Client, params: dict[str, str]) -> None:
    response = viewer.get(URL, params, HTTP_ACCEPT_LANGUAGE="uk")
    assert response.status_code == 200
    scope = response.context["scope"]
    assert (scope.start, scope.end) == (timezone.localdate() - timedelta(days=6), timezone.localdate())
    assert response.context["form"].errors


def test_an_empty_period_renders(viewer: Client) -> None:
    response = viewer.get(URL)
    assert response.status_code == 200
    assert response.context["total"].conversations == 0
    assert "За цей період нічого немає." in response.content.decode()


# --- untrusted text, CSV --------------------------------------------------------------------------------------


def test_shopper_words_and_product_names_are_escaped_in_charts_and_tables(viewer: Client) -> None:
    turns(
        "u9",
        "s1",
        {"query": HOSTILE},
        {"cart_adds": 1, "cart_total": Decimal(1), "added": [{"sku": "x", "name": f"{HOSTILE}Сир", "quantity": "1"}]},
    )
    page = viewer.get(URL).content.decode()
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&quot;q&quot;)&lt;/script&gt;" in page
    assert "<script>alert" not in page


def test_csv_download(week: None, viewer: Client) -> None:
    turns("u9", "s1", {"query": '=HYPERLINK("http://evil")'})
    response = viewer.get(URL, {"period": "7", "csv": "queries"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="insights-queries-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Запит покупця", "Разів"]
    assert ['\'=HYPERLINK("http://evil")', "1"] in rows
    daily = list(csv.reader(io.StringIO(viewer.get(URL, {"period": "7", "csv": "activity"}).content.decode())))
    assert daily[0] == ["День", "Розмови", "Ходи"] and len(daily) == 8
    assert daily[-1] == [timezone.localdate().isoformat(), "4", "7"]  # with the one above


def test_every_chart_offers_its_csv(week: None, viewer: Client) -> None:
    response = viewer.get(URL, {"period": "30"})
    page = response.content.decode()
    for found in response.context["charts"]:
        assert f"csv={found.key}" in page
        download = viewer.get(URL, {"period": "30", "csv": found.key})
        assert download["Content-Type"].startswith("text/csv"), found.key


# --- cost -------------------------------------------------------------------------------------------------------

#: Session, user, the viewer's permissions (their own and their groups'), stores, then one each for activity, errors,
#: latency, products and queries, and three for the replies' ratings (per day, reasons, latest down): 13, whatever the
#: number of turns.
QUERY_BOUND = 13


@pytest.mark.parametrize("conversations", [2, 40])
def test_queries_do_not_grow_with_turns(
    viewer: Client, django_assert_max_num_queries: Callable[..., Any], conversations: int
) -> None:
    for index in range(conversations):
        turns(
            f"u{index}",
            f"s{index % 3}",
            {"query": f"запит {index}", "first_token_ms": 100 + index, "duration_ms": 1000 + index},
            {"cart_adds": 1, "cart_total": Decimal(10), "added": [{"sku": f"p{index}", "name": "Т", "quantity": "1"}]},
            {"error_code": "turn_timeout", "started_at": at(index % 7)},
        )
    with django_assert_max_num_queries(QUERY_BOUND):
        response = viewer.get(URL, {"period": "30"})
    assert response.context["total"].conversations == conversations


# --- the drawing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "top", "steps"),
    [(0, 1, 1), (0.4, 0.4, 4), (3, 3, 3), (7, 8, 4), (230, 250, 5), (1234, 1250, 5), (100, 100, 5)],
)
def test_axis_lines_sit_on_round_numbers(peak: float, top: float, steps: int) -> None:
    found_top, found_steps = charts.axis(peak)
    assert found_top == pytest.approx(top)
    assert found_steps == steps


def test_charts_draw_every_value_with_a_label() -> None:
    labels = ["01.05", "02.05", "03.05"]
    svg = charts.lines(labels, [charts.Series("A & B", [1, None, 3])], str, title='Т "1"')
    assert svg.count("<svg") == 2  # wide and narrow
    assert svg.count("<circle") == 4  # two points (a gap for the missing day), in both drawings
    assert "A &amp; B" in svg and 'aria-label="Т &quot;1&quot;"' in svg
    bars = charts.columns(labels, [charts.Series("x", [1, 2, 0]), charts.Series("y", [1, 0, 0])], str, title="t")
    assert bars.count("<rect") == 2 * 3  # zero-height bars are not drawn
    assert charts.lines(labels[:2], [charts.Series("x", [1, 2])], str, title="t").count("<rect") == 4


def test_days_are_a_closed_range() -> None:
    scope = insights.Scope(date(2026, 2, 27), date(2026, 3, 2))
    assert scope.days == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


def test_fast_first_words_read_in_milliseconds_on_distinct_ticks(viewer: Client) -> None:
    """Sub-second times said in milliseconds: five ticks of "0,0 с" and a median equal to its p95 misled (issue 25)."""
    turns(
        "u1",
        "s1",
        *({"query": "x", "first_token_ms": ms, "duration_ms": ms + 900} for ms in (40, 45, 50, 60, 90, 1250)),
    )
    with translation.override("uk"):
        response = viewer.get(URL, {"period": "7"}, HTTP_ACCEPT_LANGUAGE="uk")
    svg = str(chart(response, "first_token").svg)
    wide = svg.split("vz-svg-narrow")[0]
    ticks = re.findall(r'class="vz-tick" x="[\d.]+" y="[\d.]+" text-anchor="end">([^<]+)<', wide)
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
    assert "0\u00a0мс" in ticks and any(tick.endswith("\u00a0с") for tick in ticks), ticks
    page = response.content.decode()
    assert "50\u00a0мс" in page  # the median
    assert insights.duration_text(1260) == "1,3\u00a0с" and insights.duration_text(999) == "999\u00a0мс"
    with translation.override("uk"):
        assert [insights.duration_tick(v) for v in (0, 250, 1000, 1250)] == [
            "0\u00a0мс",
            "250\u00a0мс",
            "1\u00a0с",
            "1,25\u00a0с",
        ]


# --- reply feedback (issue 25) ------------------------------------------------------------------------------------


def rated_chat(user: str, store_id: str, *ratings: tuple[str, str, str]) -> Conversation:
    """A conversation of question/reply pairs, each reply rated (value, reason, comment) by its shopper."""
    from chat import feedback
    from chat.models import Message

    conversation = Conversation.objects.create(user_id=user, store_id=store_id)
    for index, (value, reason, text) in enumerate(ratings):
        seq = 2 * index + 1
        Message.objects.create(conversation=conversation, seq=seq, role="user", kind="text", text=f"питання {seq}")
        Message.objects.create(
            conversation=conversation, seq=seq + 1, role="assistant", kind="text", text=f"відповідь {seq + 1}"
        )
        assert feedback.rate(conversation.pk, user, feedback.Rating(seq + 1, value, reason, text)) is not None
    return conversation


def test_ratings_per_day_reasons_and_the_latest_down_rated_replies(viewer: Client) -> None:
    first = rated_chat("u1", "s1", ("up", "", ""), ("down", "wrong_products", HOSTILE), ("up", "", ""))
    rated_chat("u2", "s2", ("down", "wrong_price", ""), ("down", "wrong_products", ""))
    turns("u1", "s1", {"query": "x"})  # the store filter offers stores with turns
    response = viewer.get(URL, {"period": "today"}, HTTP_ACCEPT_LANGUAGE="uk")
    assert today_row(chart(response, "ratings"))[1:] == [40.0, 2.0, 3.0]
    assert chart(response, "reasons").raw == [["wrong_products", 2], ["wrong_price", 1]]
    latest = response.context["latest_down"]
    assert [(one.question, one.reply, one.reason) for one in latest][-1] == (
        "питання 3",
        "відповідь 4",
        "wrong_products",
    )
    page = response.content.decode()
    assert f'href="/admin/chat/conversation/{first.pk}/change/#vz-msg-4"' in page
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert "40,0\u00a0%" in page  # the period's share in the summary
    only_s1 = viewer.get(URL, {"period": "today", "store": "s1"})
    assert today_row(chart(only_s1, "ratings"))[1:] == [pytest.approx(200 / 3), 2.0, 1.0]
    assert len(only_s1.context["latest_down"]) == 1


def test_the_conversation_list_filters_by_rating(viewer: Client) -> None:
    up = rated_chat("u1", "s1", ("up", "", ""))
    down = rated_chat("u2", "s1", ("up", "", ""), ("down", "other", "ні"))
    unrated = Conversation.objects.create(user_id="u3", store_id="s1")
    Conversation.objects.filter(pk__in=[up.pk, down.pk, unrated.pk]).update(turn_count=1)
    url = reverse("admin:chat_conversation_changelist")

    def listed(rating: str) -> set[int]:
        return {c.pk for c in viewer.get(url, {"rating": rating}).context["cl"].result_list}

    assert listed("down") == {down.pk}
    assert listed("up") == {up.pk, down.pk}
    assert listed("rated") == {up.pk, down.pk}
    assert listed("none") == {unrated.pk}
