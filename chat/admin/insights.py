"""``/admin/insights/``: what the assistant does for the store, per day, drawn as SVG charts with their numbers.

Everything is read from ``Turn`` rows (one per finished turn, written by ``chat.persistence.store.record_turn``),
never from message payloads: a page over 30 days of a busy store aggregates tens of thousands of small rows through the
``day`` indexes, in a fixed number of queries whatever the period (``manage.py bench_insights`` measures it).

Definitions, as the page states them:

- conversations of a day: conversations with at least one turn that day; shoppers: their distinct user ids;
- conversion: the share of those conversations with at least one add to the cart;
- cart value: for each conversation with an add, the largest cart total after an add, summed;
- time to first token and duration: median and 95th percentile (nearest rank) of the turns that have them;
- queries without products: the shopper's words of turns that ended without an error and showed no product card,
  no ingredient checklist and changed no cart (a recipe or "add two milk" is an answer, not a miss).

Staff with the conversation view permission may see it (they can read the conversations themselves anyway).
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.safestring import SafeString
from django.utils.translation import get_language, pgettext_lazy

from chat.admin import charts, now
from chat.admin.codes import error_detail, error_name
from chat.models import Feedback, Message, Turn
from chat.presentation import formatting

#: The longest custom period, in days: a year of per-day points is as much as a chart can show.
MAX_DAYS = 366
#: Rows in the "top" rankings.
TOP = 15
#: Distinct query texts read before folding their case: the ranking's head is what matters.
QUERY_GROUPS = 500
#: Error codes drawn separately in the errors chart; the rest are summed as "other".
ERROR_SERIES = 6
STORE_CHOICES = 100
#: Turns-per-conversation buckets: (label, lowest, highest or None).
DEPTH_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, None))


PERIODS: dict[str, tuple[Promise, int]] = {
    "today": (pgettext_lazy("admin", "Today"), 1),
    "7": (pgettext_lazy("admin", "7 days"), 7),
    "30": (pgettext_lazy("admin", "30 days"), 30),
}


# --- the filter form ------------------------------------------------------------------------------------------


class InsightsForm(forms.Form):
    period = forms.ChoiceField(
        label=pgettext_lazy("admin", "Period"),
        choices=[*((key, label) for key, (label, _) in PERIODS.items()), ("custom", pgettext_lazy("admin", "Custom"))],
        required=False,
        widget=forms.RadioSelect,
    )
    start = forms.DateField(
        label=pgettext_lazy("admin", "From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label=pgettext_lazy("admin", "To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    store = forms.ChoiceField(label=pgettext_lazy("admin", "Store"), required=False)

    def __init__(self, *args: Any, stores: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        store_field = self.fields["store"]
        assert isinstance(store_field, forms.ChoiceField)  # declared above; ``fields`` is typed as plain Field
        store_field.choices = [
            ("", pgettext_lazy("admin", "All stores")),
            *((store, store or "—") for store in stores),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data; the stub allows an override's None
        if not data.get("period") and (data.get("start") or data.get("end")):
            data["period"] = "custom"  # dates typed without choosing "custom" still mean them
        if data.get("period") == "custom":
            start, end = data.get("start"), data.get("end")
            if start is None or end is None:
                raise forms.ValidationError(pgettext_lazy("admin", "Choose both dates of the custom period."))
            if start > end:
                raise forms.ValidationError(pgettext_lazy("admin", "The period's start is after its end."))
            if (end - start).days + 1 > MAX_DAYS:
                raise forms.ValidationError(
                    pgettext_lazy("admin", "A period may span at most %(days)d days.") % {"days": MAX_DAYS}
                )
        return data


@dataclass(frozen=True)
class Scope:
    """The days (in the site's time zone, both ends included) and the store the page covers."""

    start: date
    end: date
    store: str = ""

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range((self.end - self.start).days + 1)]

    def query_string(self) -> str:
        from urllib.parse import urlencode

        params = {"period": "custom", "start": self.start.isoformat(), "end": self.end.isoformat()}
        if self.store:
            params["store"] = self.store
        return urlencode(params)


def scope_from(form: InsightsForm, today: date) -> Scope:
    """The form's scope; an invalid or empty form means the last 7 days of every store."""
    data = form.cleaned_data if form.is_valid() else {}
    period = data.get("period") or "7"
    if period == "custom":
        start, end = data["start"], data["end"]
    else:
        start, end = today - timedelta(days=PERIODS.get(period, PERIODS["7"])[1] - 1), today
    return Scope(start, end, data.get("store") or "")


# --- the queries ----------------------------------------------------------------------------------------------


def _where(scope: Scope, alias: str = "") -> tuple[str, list[Any]]:
    """The period (and store) as SQL over the turn table; ``day`` and ``store_id`` lead every insights index."""
    prefix = f"{alias}." if alias else ""
    sql = f"{prefix}day >= %s AND {prefix}day <= %s"
    params: list[Any] = [
        connection.ops.adapt_datefield_value(scope.start),
        connection.ops.adapt_datefield_value(scope.end),
    ]
    if scope.store:
        sql += f" AND {prefix}store_id = %s"
        params.append(scope.store)
    return sql, params


def _turns_table() -> str:
    return connection.ops.quote_name(Turn._meta.db_table)


@functools.lru_cache(maxsize=4096)
def _parse_day(text: str) -> date:
    return date.fromisoformat(text)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else _parse_day(str(value))


def _day_text() -> str:
    """``day`` as ISO text: SQLite's driver would otherwise parse every row's date with a Python converter, which
    cost more than the query (0.3 s for 400k rows); the few distinct days are parsed once each, here."""
    return "CAST(day AS TEXT)" if connection.vendor == "sqlite" else "day"


def _decimal(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@dataclass
class Day:
    conversations: int = 0
    turns: int = 0
    adds: int = 0
    converted: int = 0
    cart_value: Decimal = Decimal(0)
    shoppers: int = 0

    @property
    def conversion(self) -> float | None:
        return None if not self.conversations else 100 * self.converted / self.conversations


@dataclass
class Totals:
    conversations: int = 0
    converted: int = 0
    turns: int = 0
    adds: int = 0
    errors: int = 0
    shoppers: int = 0
    cart_value: Decimal = Decimal(0)
    #: Conversations by their number of turns in the period.
    depth: Counter[int] = field(default_factory=Counter)

    @property
    def conversion(self) -> float | None:
        return None if not self.conversations else 100 * self.converted / self.conversations

    @property
    def turns_per_conversation(self) -> float | None:
        return None if not self.conversations else self.turns / self.conversations


def _list(value: str | None) -> list[Any]:
    """An array aggregated by SQLite's ``json_group_array`` (its text), parsed in C."""
    return [] if value is None else list(json.loads(value))


def activity(scope: Scope) -> tuple[dict[date, Day], Totals]:
    """Conversations, turns, adds, conversions, cart value and shoppers, per day and for the whole period.

    SQLite: one query returns a row per day, read from the ``turn_day_totals`` index alone, with the conversation
    and shopper of each of the day's turns and the conversation and cart total of each add as JSON arrays
    (``json_group_array``); the distinct counts per day and over the period (where a conversation that spans two
    days counts once) are then sets and ``Counter``s built in C. A row per conversation and day, summed in a
    Python loop, cost 0.4 s of CPU for a year of a busy store; the arrays, two thirds of it. PostgreSQL keeps the
    row per conversation and day (``_activity_by_rows``): its ``array_agg`` took the server longer than the rows.
    """
    if connection.vendor == "postgresql":
        return _activity_by_rows(scope)
    where, params = _where(scope)
    add, cart = "cart_adds > 0", "cart_adds > 0 AND cart_total IS NOT NULL"
    rows = _fetch(
        f"SELECT {_day_text()}, json_group_array(conversation_id), json_group_array(user_id), SUM(cart_adds), "
        f"json_group_array(conversation_id) FILTER (WHERE {add}), "
        f"json_group_array(conversation_id) FILTER (WHERE {cart}), json_group_array(cart_total) FILTER (WHERE {cart}) "
        f"FROM {_turns_table()} WHERE {where} GROUP BY day",
        params,
    )
    days: dict[date, Day] = {}
    conversations: list[list[int]] = []
    shoppers: set[str] = set()
    converted: set[int] = set()
    #: Each converted conversation's fullest cart after an add, over the period.
    carts: dict[int, Any] = {}
    for day, of_turns, users_of_turns, adds, of_adds, of_carts, totals in rows:
        of_turns, users = _list(of_turns), set(_list(users_of_turns))
        added_to = set(_list(of_adds))
        fullest: dict[int, Any] = {}  # the day's: a conversation's cart value that day
        for conversation, total in zip(_list(of_carts), _list(totals), strict=True):
            if fullest.get(conversation, -1) < total:
                fullest[conversation] = total
        for conversation, total in fullest.items():
            if carts.get(conversation, -1) < total:
                carts[conversation] = total
        days[_day(day)] = Day(
            len(set(of_turns)),
            len(of_turns),
            int(adds or 0),
            len(added_to),
            _decimal(sum(fullest.values(), 0)),
            len(users),
        )
        conversations.append(of_turns)
        shoppers |= users
        converted |= added_to
    turns_of = Counter(chain.from_iterable(conversations))
    total = Totals(
        conversations=len(turns_of),
        converted=len(converted),
        turns=sum(one.turns for one in days.values()),
        adds=sum(one.adds for one in days.values()),
        shoppers=len(shoppers),
        cart_value=_decimal(sum(carts.values(), 0)),
        depth=Counter(turns_of.values()),
    )
    return days, total


def _activity_by_rows(scope: Scope) -> tuple[dict[date, Day], Totals]:
    """``activity`` from a row per conversation and day (its turns, adds and fullest cart after an add), read
    from the ``turn_day_totals`` index alone, summed per day and over the period in a Python loop."""
    where, params = _where(scope)
    rows = _fetch(
        f"SELECT {_day_text()}, conversation_id, user_id, COUNT(*), SUM(cart_adds), "
        f"MAX(CASE WHEN cart_adds > 0 THEN cart_total END) FROM {_turns_table()} WHERE {where} "
        "GROUP BY day, store_id, conversation_id, user_id",
        params,
    )
    # Per day: [conversations, turns, adds, converted, cart value, shoppers]; plain lists, the loop is hot.
    per_day: dict[str, list[Any]] = {}
    turns_of: Counter[int] = Counter()
    carts: dict[int, Any] = {}
    converted: set[int] = set()
    shoppers: set[str] = set()
    for day, conversation, user, turns, adds, cart in rows:
        one = per_day.get(day)
        if one is None:
            one = per_day[day] = [0, 0, 0, 0, 0, set()]
        one[0] += 1
        one[1] += turns
        one[5].add(user)
        shoppers.add(user)
        turns_of[conversation] += turns
        if adds:
            one[2] += adds
            one[3] += 1
            converted.add(conversation)
            if cart is not None:
                one[4] += cart
                if carts.get(conversation, -1) < cart:
                    carts[conversation] = cart
    days = {
        _day(day): Day(conversations, turns, adds, converted, _decimal(cart), len(users))
        for day, (conversations, turns, adds, converted, cart, users) in per_day.items()
    }
    total = Totals(
        conversations=len(turns_of),
        converted=len(converted),
        turns=sum(one.turns for one in days.values()),
        adds=sum(one.adds for one in days.values()),
        shoppers=len(shoppers),
        cart_value=_decimal(sum(carts.values(), 0)),
        depth=Counter(turns_of.values()),
    )
    return days, total


def errors(scope: Scope) -> dict[str, dict[date, int]]:
    """Turns that ended with an error, per code and day (the partial index ``turn_day_errors`` holds just those)."""
    where, params = _where(scope)
    rows = _fetch(
        f"SELECT {_day_text()}, error_code, COUNT(*) FROM {_turns_table()} WHERE {where} AND NOT (error_code = '') "
        "GROUP BY day, error_code",
        params,
    )
    result: dict[str, dict[date, int]] = defaultdict(dict)
    for day, code, count in rows:
        result[code][_day(day)] = count
    return dict(result)


#: Percentiles, as (key, share in percent): nearest rank, the smallest value with at least that share at or below.
PERCENTILES = (("median", 50), ("p95", 95))
METRICS = (("first_token", "first_token_ms"), ("duration", "duration_ms"))


def _nearest_rank(ordered: Sequence[int], share: int) -> int:
    return ordered[max(0, (len(ordered) * share + 99) // 100 - 1)]


def _rank_in(runs: Sequence[Sequence[int]], share: int) -> int:
    """The nearest-rank percentile of the union of sorted ``runs`` (not empty), without merging them.

    The answer is the smallest value ``v`` with at least ``rank`` values at or below it; counting those is a
    bisection in each run, so a year of per-day runs is searched in a few thousand C calls instead of sorting
    hundreds of thousands of numbers again.
    """
    rank = max(1, (sum(len(run) for run in runs) * share + 99) // 100)
    low, high = min(run[0] for run in runs if run), max(run[-1] for run in runs if run)
    while low < high:
        middle = (low + high) // 2
        if sum(bisect_right(run, middle) for run in runs) >= rank:
            high = middle
        else:
            low = middle + 1
    return low


def latency(scope: Scope) -> dict[tuple[str, date | None], dict[str, int]]:
    """Median and 95th percentile of time to first token and of duration, per day and (day None) overall.

    PostgreSQL computes them itself (``percentile_disc`` per day and, through ``ROLLUP``, for the period). SQLite
    has no percentile function and its window functions cost ~0.1 s per metric and month even on a covering index;
    there each metric's values of a day come as one array (``json_group_array``) read from an index ordered by day
    and value (``turn_day_first_token``, ``turn_day_duration``), so they arrive sorted, and are ranked here; the
    period's percentile is searched in the sorted days (``_rank_in``). A row per turn cost 0.5 s of CPU for a year
    of a busy store (342k turns), most of it making Python tuples. Both give the nearest-rank percentile (the
    smallest value with at least that share at or below).
    """
    where, params = _where(scope)
    result: dict[tuple[str, date | None], dict[str, int]] = {}
    if connection.vendor == "postgresql":
        shares = ", ".join(str(share / 100) for _, share in PERCENTILES)
        picks = ", ".join(f"percentile_disc(ARRAY[{shares}]) WITHIN GROUP (ORDER BY {column})" for _, column in METRICS)
        sql = f"SELECT day, {picks} FROM {_turns_table()} WHERE {where} GROUP BY ROLLUP (day)"
        for day, *values in _fetch(sql, params):
            for (metric, _), picked in zip(METRICS, values, strict=True):
                if picked:
                    key = (metric, None if day is None else _day(day))
                    result[key] = {name: int(v) for (name, _), v in zip(PERCENTILES, picked, strict=True)}
        return result
    # One statement, a part per metric, each on its own index; its condition is spelled as the partial index's
    # (SQLite uses such an index only then).
    parts = " UNION ALL ".join(
        f"SELECT {index}, {_day_text()}, json_group_array({column}) FROM {_turns_table()} "
        f"WHERE {where} AND {column} IS NOT NULL GROUP BY day"
        for index, (_, column) in enumerate(METRICS)
    )
    runs: list[list[list[int]]] = [[] for _ in METRICS]
    for index, day, values in _fetch(parts, params * len(METRICS)):
        ordered: list[int] = _list(values)
        ordered.sort()  # already in order (the index's): a linear check, kept so no figure rests on it
        result[(METRICS[index][0], _day(day))] = {name: _nearest_rank(ordered, share) for name, share in PERCENTILES}
        runs[index].append(ordered)
    for (metric, _), found in zip(METRICS, runs, strict=True):
        if found:
            result[(metric, None)] = {name: _rank_in(found, share) for name, share in PERCENTILES}
    return result


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    adds: int
    quantity: Decimal


def top_products(scope: Scope, limit: int = TOP) -> list[Product]:
    """Products by the number of times shoppers added them, unpacked from the turns' ``added`` lists in SQL.

    The partial index ``turn_day_adds`` finds the turns that added something; the JSON is unpacked by the
    database (SQLite's ``json_each``, PostgreSQL's ``jsonb_array_elements``), so only the ranking travels. The
    turns' lists are grouped by their text first and each distinct list unpacked once, its items weighted by how
    many turns had it (on SQLite: its JSON functions reparse the text at every call): most adds are one product in a
    usual quantity, so a year's 57k lists are a few dozen distinct ones, and the query takes half the time.
    """
    where, params = _where(scope, "turn")
    if connection.vendor == "postgresql":
        items, field = "jsonb_array_elements(turn.added) AS item(value)", "item.value ->> '{}'"
        where += " AND jsonb_typeof(turn.added) = 'array'"  # filters the turn before its list is unpacked
    else:
        items, field = "json_each(turn.added) AS item", "json_extract(item.value, '$.{}')"
    sku, name, quantity = (field.format(key) for key in ("sku", "name", "quantity"))
    # A quantity that is no number counts as none: its text is checked before the cast on both databases.
    number = f"CASE WHEN {quantity} GLOB '[0-9]*' THEN {quantity} END"
    if connection.vendor == "postgresql":
        number = f"CASE WHEN {quantity} ~ '^[0-9]+(\\.[0-9]+)?$' THEN ({quantity})::numeric END"
    key = f"COALESCE(NULLIF({sku}, ''), {name})"
    # PostgreSQL unpacks JSON fast and compares jsonb slowly: grouping the lists there tripled its time.
    weight, grouped = ("1", "") if connection.vendor == "postgresql" else ("COUNT(*)", " GROUP BY turn.added")
    lists = (
        f"SELECT turn.added AS added, {weight} AS n FROM {_turns_table()} AS turn "
        f"WHERE {where} AND turn.cart_adds > 0{grouped}"
    )
    rows = _fetch(
        f"SELECT {key} AS product, MAX({sku}), MAX({name}), SUM(turn.n), SUM({number} * turn.n) "
        f"FROM ({lists}) AS turn, {items} WHERE {key} IS NOT NULL AND {key} <> '' GROUP BY {key}",
        params,
    )
    ranked = sorted(rows, key=lambda row: (-row[3], str(row[2] or row[1]).casefold(), row[0]))[:limit]
    return [
        Product(str(row_sku or ""), str(row_name or row_sku or ""), int(count), _decimal(total).normalize())
        for _, row_sku, row_name, count, total in ranked
    ]


@dataclass(frozen=True)
class Query:
    text: str
    count: int


def missing_queries(scope: Scope, limit: int = TOP) -> list[Query]:
    """The shopper's words most often answered with nothing to act on: what the catalog (or the search) lacks.

    Grouped by exact text in SQL (the partial index ``turn_day_unmatched`` holds just these turns), then by
    case-folded, space-normalised text here ("Молоко" and "молоко " are one query), shown in its most frequent
    spelling.
    """
    where, params = _where(scope)
    rows = _fetch(
        # The condition is spelled as the partial index's (no parameters): SQLite uses such an index only when
        # the query's terms visibly imply its WHERE.
        f"SELECT query, COUNT(*) AS n FROM {_turns_table()} WHERE {where} AND NOT had_cards "
        "AND NOT had_checklist AND NOT cart_changed "
        f"AND outcome = '{Turn.Outcome.ANSWERED}' AND NOT (query = '') GROUP BY query ORDER BY n DESC, query LIMIT %s",
        [*params, QUERY_GROUPS],
    )
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for text, count in rows:
        key = " ".join(text.casefold().split())
        counts[key] += count
        spellings[key][" ".join(text.split())] += count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [Query(min(spellings[key].items(), key=lambda s: (-s[1], s[0]))[0], count) for key, count in ranked]


# --- reply feedback (issue 25) -----------------------------------------------------------------------------------


def _feedback_table() -> str:
    return connection.ops.quote_name(Feedback._meta.db_table)


def ratings(scope: Scope) -> dict[date, dict[str, int]]:
    """Replies rated up and down per day of the rating (the ``feedback_day`` index holds every column read)."""
    where, params = _where(scope)
    rows = _fetch(
        f"SELECT {_day_text()}, value, COUNT(*) FROM {_feedback_table()} WHERE {where} GROUP BY day, value", params
    )
    result: dict[date, dict[str, int]] = defaultdict(dict)
    for day, value, count in rows:
        result[_day(day)][value] = count
    return dict(result)


def down_reasons(scope: Scope) -> list[tuple[str, int]]:
    """Down ratings by reason in the period, most frequent first ("" = no reason given)."""
    where, params = _where(scope)
    rows = _fetch(
        f"SELECT reason, COUNT(*) AS n FROM {_feedback_table()} WHERE {where} AND value = %s GROUP BY reason",
        [*params, Feedback.Value.DOWN],
    )
    return sorted(((reason, int(count)) for reason, count in rows), key=lambda row: (-row[1], row[0]))


@dataclass(frozen=True)
class DownRated:
    conversation_id: int
    seq: int
    question: str
    reply: str
    reason: str
    text: str
    rated_at: Any

    @property
    def link(self) -> str:
        return reverse("admin:chat_conversation_change", args=[self.conversation_id]) + f"#vz-msg-{self.seq}"

    @property
    def reason_label(self) -> str:
        return str(Feedback.Reason(self.reason).label) if self.reason in Feedback.Reason.values else ""


#: Down-rated replies listed on the page.
LATEST_DOWN = 10


def latest_down(scope: Scope, limit: int = LATEST_DOWN) -> list[DownRated]:
    """The newest down-rated replies with the shopper's question before each, in one query.

    The ten ratings are picked first (``day`` is ``rated_at``'s date, so ordering by both walks the
    ``feedback_latest`` index backwards from the period's end with no sort); only then are their question (a
    subquery on the message key) and reply read.
    Spelled as one ORM query, SQLite computed the question for every down rating of the period before sorting
    (0.6 s for a year of a busy store).
    """
    where, params = _where(scope)
    messages = connection.ops.quote_name(Message._meta.db_table)
    rows = _fetch(
        "SELECT f.conversation_id, f.seq, (SELECT q.text FROM "
        f"{messages} AS q WHERE q.conversation_id = f.conversation_id AND q.seq < f.seq AND q.role = %s "
        "ORDER BY q.seq DESC LIMIT 1), r.text, f.reason, f.text, f.rated_at FROM "
        f"(SELECT conversation_id, seq, message_id, reason, text, rated_at FROM {_feedback_table()} "
        f"WHERE value = %s AND {where} ORDER BY day DESC, rated_at DESC LIMIT %s) AS f "
        f"JOIN {messages} AS r ON r.id = f.message_id ORDER BY f.rated_at DESC",
        [Message.Role.USER, Feedback.Value.DOWN, *params, limit],
    )
    field = Feedback._meta.get_field("rated_at")
    return [
        DownRated(int(c), int(seq), q or "", r or "", reason, text, _aware(field, at))
        for c, seq, q, r, reason, text, at in rows
    ]


def _aware(field: Any, value: Any) -> Any:
    """A timestamp as the ORM would give it (SQLite's driver returns text here)."""
    for converter in connection.ops.get_db_converters(field.get_col(Feedback._meta.db_table)):
        value = converter(value, field.get_col(Feedback._meta.db_table), connection)
    return value


def stores() -> list[str]:
    """Stores with recorded turns, found by hopping along the ``turn_store_started`` index (one probe a store).

    ``SELECT DISTINCT`` would read every entry of the index; the recursive query asks for the next store after
    the previous one, which both databases answer with one index seek.
    """
    table = _turns_table()
    rows = _fetch(
        f"WITH RECURSIVE seen(store) AS (SELECT MIN(store_id) FROM {table} UNION ALL "
        f"SELECT (SELECT MIN(store_id) FROM {table} WHERE store_id > seen.store) FROM seen "
        "WHERE seen.store IS NOT NULL) SELECT store FROM seen WHERE store IS NOT NULL LIMIT %s",
        [STORE_CHOICES],
    )
    return [row[0] for row in rows]


# --- presentation ---------------------------------------------------------------------------------------------


# A page of a long period formats thousands of numbers and dates; Django's ``number_format`` and ``date_format``
# look the locale up each time (0.1 s of a year's page), so the separators and day labels are looked up once.


#: The language of the charts being built (``_charts_language``); unset, each call asks Django.
_CHARTS_LANGUAGE: ContextVar[str | None] = ContextVar("insights_charts_language", default=None)


def _language() -> str:
    return _CHARTS_LANGUAGE.get() or get_language() or "uk"


@contextmanager
def _charts_language() -> Iterator[None]:
    """The active language, looked up once for a page's charts: Django's ``get_language`` reads a context-local
    (asgiref) each time, and a year's page formats ten thousand numbers and days (50 ms of lookups)."""
    token = _CHARTS_LANGUAGE.set(get_language() or "uk")
    try:
        yield
    finally:
        _CHARTS_LANGUAGE.reset(token)


@functools.lru_cache(maxsize=16)
def _separators(language: str) -> tuple[str, str]:
    return str(formats.get_format("DECIMAL_SEPARATOR", language)), str(
        formats.get_format("THOUSAND_SEPARATOR", language)
    )


def _number(value: float, places: int) -> str:
    """``formatting.number`` for the active language, grouped by thousands (the common case, made cheap)."""
    decimal, thousands = _separators(_language())
    return f"{value:,.{places}f}".replace(",", "\0").replace(".", decimal).replace("\0", thousands)


def count_text(value: float) -> str:
    return _number(round(value), 0)


def _hryvnias(number: str) -> str:
    return f"₴{number}" if _language().startswith("en") else f"{number}\u00a0₴"


def money_text(value: float) -> str:
    return _hryvnias(_number(float(value), 2))


def percent_text(value: float) -> str:
    return f"{_number(value, 1)}\u00a0%"


def seconds_text(milliseconds: float) -> str:
    unit = pgettext_lazy("admin", "s")  # seconds
    return f"{_number(milliseconds / 1000, 1)}\u00a0{unit}"


def _milliseconds(value: float) -> str:
    return f"{_number(round(value), 0)}\u00a0{pgettext_lazy('admin', 'ms')}"  # milliseconds


def duration_text(milliseconds: float) -> str:
    """A time as staff read it: milliseconds under a second (a fast first word is 40 ms, not "0,0 s")."""
    return _milliseconds(milliseconds) if round(milliseconds) < 1000 else seconds_text(milliseconds)


def duration_tick(milliseconds: float) -> str:
    """An axis label: milliseconds under a second, seconds with as many decimals as the round step needs (the
    axis steps are 1, 2, 2.5 or 5 times a power of ten), so no two ticks read alike."""
    if round(milliseconds) < 1000:
        return _milliseconds(milliseconds)
    seconds = f"{round(milliseconds) / 1000:.3f}".rstrip("0").rstrip(".")
    places = len(seconds.partition(".")[2])
    return f"{_number(milliseconds / 1000, places)}\u00a0{pgettext_lazy('admin', 's')}"


def money_tick(value: float) -> str:
    """An axis label in whole hryvnias: the kopiyky only widen the axis."""
    return _hryvnias(_number(round(value), 0))


def percent_tick(value: float) -> str:
    return f"{_number(round(value), 0)}\u00a0%"


@functools.lru_cache(maxsize=2048)
def _day_label(day: date, language: str) -> str:
    return formats.date_format(day, "SHORT_DATE_FORMAT")


def day_text(day: date) -> str:
    return _day_label(day, _language())


def axis_day(day: date) -> str:
    return day.strftime("%d.%m")


@dataclass
class Chart:
    """One chart: its drawing, its legend, its numbers as a table (shown beside it and offered as CSV)."""

    key: str
    title: str
    note: str
    svg: SafeString
    #: (name, colour class, detail): the detail is a longer explanation shown after the name.
    legend: list[tuple[str, str, str]]
    headers: list[str]
    #: Cells as shown (localized) and as exported (plain numbers, ISO dates).
    rows: list[list[str]]
    raw: list[list[Any]]
    #: A ranking (top products, queries): at most ``TOP`` rows, all shown, long names wrapped to fit the box.
    ranking: bool = False

    @property
    def body(self) -> SafeString:
        """The table's rows as HTML, the first cell of each a row header: written here, not by a template loop,
        whose two nested ``for``s over a year's cells cost 0.1 s of the page (10,000 cells)."""
        return SafeString(
            "".join(
                f'<tr><th scope="row">{_html(row[0])}</th>{"".join(f"<td>{_html(cell)}</td>" for cell in row[1:])}</tr>'
                for row in self.rows
            )
        )


def _html(value: Any) -> str:
    """``value`` escaped as a template's ``{{ value }}`` would (text marked safe stays as it is)."""
    return str(value.__html__()) if hasattr(value, "__html__") else html.escape(str(value))


def _table(
    days: list[date], columns: list[tuple[str, Sequence[float | None], Callable[[float], str]]]
) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    headers = [str(pgettext_lazy("admin", "Day")), *(name for name, _, _ in columns)]
    shown, raw = [], []
    for index, day in enumerate(days):
        cells = [column[1][index] for column in columns]
        shown.append(
            [day_text(day), *("—" if v is None else fmt(v) for (_, _, fmt), v in zip(columns, cells, strict=True))]
        )
        raw.append([day.isoformat(), *("" if v is None else v for v in cells)])
    return headers, shown, raw


def _day_chart(
    key: str,
    title: Any,
    note: Any,
    days: list[date],
    columns: list[tuple[str, Sequence[float | None], Callable[[float], str]]],
    *,
    kind: str = "lines",
    details: dict[str, str] | None = None,
    draw: int | None = None,
) -> Chart:
    """A chart of per-day columns; ``draw``: only the first that many are drawn (the rest are table only)."""
    labels = [axis_day(day) for day in days]
    series = [charts.Series(name, values) for name, values, _ in columns[:draw]]
    fmt = columns[0][2]
    ticks: dict[Callable[[float], str], Callable[[float], str]] = {
        money_text: money_tick,
        percent_text: percent_tick,
        duration_text: duration_tick,
    }
    tick = ticks.get(fmt, fmt)
    if kind == "lines":
        svg = charts.lines(labels, series, fmt, title=str(title), tick=tick)
    else:
        svg = charts.columns(labels, series, fmt, title=str(title), stacked=kind == "stacked", tick=tick)
    headers, shown, raw = _table(days, columns)
    details = details or {}
    legend = [(name, charts.colour(index), details.get(name, "")) for index, (name, _, _) in enumerate(columns[:draw])]
    return Chart(key, str(title), str(note), svg, legend, headers, shown, raw)


class Data:
    """The queries of one page, each run when a chart first needs it: a CSV download runs only its chart's."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @functools.cached_property
    def activity(self) -> tuple[dict[date, Day], Totals]:
        per_day, total = activity(self.scope)
        total.errors = sum(count for per_code in self.errors.values() for count in per_code.values())
        return per_day, total

    @functools.cached_property
    def errors(self) -> dict[str, dict[date, int]]:
        return errors(self.scope)

    @functools.cached_property
    def latency(self) -> dict[tuple[str, date | None], dict[str, int]]:
        return latency(self.scope)

    @functools.cached_property
    def ratings(self) -> dict[date, dict[str, int]]:
        return ratings(self.scope)

    def rated(self, value: str) -> list[float | None]:
        return [float(self.ratings.get(day, {}).get(value, 0)) for day in self.scope.days]

    def rated_up_share(self) -> list[float | None]:
        shares: list[float | None] = []
        for day in self.scope.days:
            one = self.ratings.get(day, {})
            rated = one.get("up", 0) + one.get("down", 0)
            shares.append(100 * one.get("up", 0) / rated if rated else None)
        return shares

    def per_day(self, pick: Callable[[Day], float | None]) -> list[float | None]:
        per_day, empty = self.activity[0], Day()
        return [pick(per_day.get(day, empty)) for day in self.scope.days]

    def timing(self, metric: str, name: str) -> list[float | None]:
        return [self.latency.get((metric, day), {}).get(name) for day in self.scope.days]


def chart_builders(data: Data) -> dict[str, Callable[[], Chart]]:
    """Each chart of the page by its key, built on demand, in the page's order."""
    days = data.scope.days
    return {
        "activity": lambda: _day_chart(
            "activity",
            pgettext_lazy("admin", "Conversations and turns"),
            pgettext_lazy("admin", "Conversations with at least one turn that day, and their turns."),
            days,
            [
                (str(pgettext_lazy("admin", "Conversations")), data.per_day(lambda d: d.conversations), count_text),
                (str(pgettext_lazy("admin", "Turns")), data.per_day(lambda d: d.turns), count_text),
            ],
            kind="columns",
        ),
        "shoppers": lambda: _day_chart(
            "shoppers",
            pgettext_lazy("admin", "Shoppers"),
            pgettext_lazy("admin", "Distinct shoppers who sent at least one message that day."),
            days,
            [(str(pgettext_lazy("admin", "Shoppers")), data.per_day(lambda d: d.shoppers), count_text)],
        ),
        "depth": lambda: _depth_chart(data.activity[1]),
        "adds": lambda: _day_chart(
            "adds",
            pgettext_lazy("admin", "Adds to cart"),
            pgettext_lazy("admin", "Products added to the cart through the assistant."),
            days,
            [(str(pgettext_lazy("admin", "Adds to cart")), data.per_day(lambda d: d.adds), count_text)],
            kind="columns",
        ),
        "cart_value": lambda: _day_chart(
            "cart_value",
            pgettext_lazy("admin", "Cart value"),
            pgettext_lazy("admin", "For each conversation with an add, its fullest cart after an add; summed per day."),
            days,
            [(str(pgettext_lazy("admin", "Cart value")), data.per_day(lambda d: float(d.cart_value)), money_text)],
            kind="columns",
        ),
        "conversion": lambda: _day_chart(
            "conversion",
            pgettext_lazy("admin", "Conversion"),
            pgettext_lazy("admin", "Share of the day's conversations with at least one add to the cart."),
            days,
            [(str(pgettext_lazy("admin", "Conversion")), data.per_day(lambda d: d.conversion), percent_text)],
        ),
        "errors": lambda: _errors_chart(days, data.errors),
        "first_token": lambda: _day_chart(
            "first_token",
            pgettext_lazy("admin", "Time to first token"),
            pgettext_lazy("admin", "From the shopper's send to the first word of the reply."),
            days,
            [
                (str(pgettext_lazy("admin", "Median")), data.timing("first_token", "median"), duration_text),
                (str(pgettext_lazy("admin", "95th percentile")), data.timing("first_token", "p95"), duration_text),
            ],
        ),
        "duration": lambda: _day_chart(
            "duration",
            pgettext_lazy("admin", "Turn duration"),
            pgettext_lazy("admin", "From the shopper's send to the end of the reply (or its error)."),
            days,
            [
                (str(pgettext_lazy("admin", "Median")), data.timing("duration", "median"), duration_text),
                (str(pgettext_lazy("admin", "95th percentile")), data.timing("duration", "p95"), duration_text),
            ],
        ),
        "products": lambda: _products_chart(top_products(data.scope)),
        "queries": lambda: _queries_chart(missing_queries(data.scope)),
        "ratings": lambda: _day_chart(
            "ratings",
            pgettext_lazy("admin", "Replies rated helpful"),
            pgettext_lazy(
                "admin", "Of the replies shoppers rated that day, the share they rated helpful; and the ratings."
            ),
            days,
            [
                (str(pgettext_lazy("admin", "Rated helpful")), data.rated_up_share(), percent_text),
                (str(pgettext_lazy("admin", "Helpful")), data.rated("up"), count_text),
                (str(pgettext_lazy("admin", "Not helpful")), data.rated("down"), count_text),
            ],
            draw=1,
        ),
        "reasons": lambda: _reasons_chart(down_reasons(data.scope)),
    }


def build_charts(scope: Scope) -> tuple[Totals, dict[str, Any], list[Chart]]:
    """Every number of the page for ``scope``: the period's totals, headline latencies and the charts."""
    data = Data(scope)
    with _charts_language():
        charts_built = [build() for build in chart_builders(data).values()]
    headline = {
        "first_token": data.latency.get(("first_token", None), {}),
        "duration": data.latency.get(("duration", None), {}),
        "rated_up": _share_up(data.ratings),
    }
    return data.activity[1], headline, charts_built


def _share_up(per_day: dict[date, dict[str, int]]) -> float | None:
    up = sum(one.get("up", 0) for one in per_day.values())
    rated = up + sum(one.get("down", 0) for one in per_day.values())
    return 100 * up / rated if rated else None


def _bucket_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return str(low) if low == high else f"{low}–{high}"


def _depth_chart(total: Totals) -> Chart:
    labels, values = [], []
    for low, high in DEPTH_BUCKETS:
        labels.append(_bucket_label(low, high))
        values.append(
            float(sum(n for turns, n in total.depth.items() if turns >= low and (high is None or turns <= high)))
        )
    title = str(pgettext_lazy("admin", "Turns per conversation"))
    name = str(pgettext_lazy("admin", "Conversations"))
    svg = charts.columns(labels, [charts.Series(name, values)], count_text, title=title)
    headers = [str(pgettext_lazy("admin", "Turns")), name]
    return Chart(
        "depth",
        title,
        str(pgettext_lazy("admin", "How many turns the period's conversations had.")),
        svg,
        [(name, charts.colour(0), "")],
        headers,
        [[label, count_text(value)] for label, value in zip(labels, values, strict=True)],
        [[label, int(value)] for label, value in zip(labels, values, strict=True)],
    )


def _errors_chart(days: list[date], by_code: dict[str, dict[date, int]]) -> Chart:
    ranked = sorted(by_code, key=lambda code: (-sum(by_code[code].values()), code))
    shown, rest = ranked[:ERROR_SERIES], ranked[ERROR_SERIES:]
    columns: list[tuple[str, Sequence[float | None], Callable[[float], str]]] = [
        (error_name(code), [float(by_code[code].get(day, 0)) for day in days], count_text) for code in shown
    ]
    details = {error_name(code): f"{code}: {error_detail(code)}".rstrip(": ") for code in shown}
    if rest:
        other = [float(sum(by_code[code].get(day, 0) for code in rest)) for day in days]
        columns.append((str(pgettext_lazy("admin", "Other errors")), other, count_text))
    if not columns:
        columns = [(str(pgettext_lazy("admin", "Errors")), [0.0 for _ in days], count_text)]
    return _day_chart(
        "errors",
        pgettext_lazy("admin", "Errors by code"),
        pgettext_lazy("admin", "Turns that ended with an error of the relay or of the assistant, per code."),
        days,
        columns,
        kind="stacked",
        details=details,
    )


def _products_chart(products: list[Product]) -> Chart:
    title = str(pgettext_lazy("admin", "Top products added"))
    labels = [product.name or product.sku for product in products]
    svg = charts.rows(labels, [float(p.adds) for p in products], count_text, title=title)
    headers = [
        str(pgettext_lazy("admin", "Product")),
        str(pgettext_lazy("admin", "SKU")),
        str(pgettext_lazy("admin", "Adds")),
        str(pgettext_lazy("admin", "Quantity")),
    ]
    return Chart(
        "products",
        title,
        str(pgettext_lazy("admin", "Products by how often shoppers added them through the assistant.")),
        svg,
        [],
        headers,
        [[p.name, p.sku, count_text(p.adds), formatting.number(p.quantity)] for p in products],
        [[p.name, p.sku, p.adds, p.quantity] for p in products],
        ranking=True,
    )


def _queries_chart(queries: list[Query]) -> Chart:
    title = str(pgettext_lazy("admin", "Queries without products"))
    svg = charts.rows([q.text for q in queries], [float(q.count) for q in queries], count_text, title=title)
    headers = [str(pgettext_lazy("admin", "Shopper's query")), str(pgettext_lazy("admin", "Times"))]
    return Chart(
        "queries",
        title,
        str(
            pgettext_lazy(
                "admin", "What shoppers asked for most often when the reply showed no product: what the catalog lacks."
            )
        ),
        svg,
        [],
        headers,
        [[q.text, count_text(q.count)] for q in queries],
        [[q.text, q.count] for q in queries],
        ranking=True,
    )


def _reasons_chart(reasons: list[tuple[str, int]]) -> Chart:
    title = str(pgettext_lazy("admin", "Why replies were not helpful"))
    names = [
        str(Feedback.Reason(reason).label)
        if reason in Feedback.Reason.values
        else str(pgettext_lazy("admin", "no reason given"))
        for reason, _ in reasons
    ]
    svg = charts.rows(names, [float(count) for _, count in reasons], count_text, title=title)
    headers = [str(pgettext_lazy("admin", "Reason")), str(pgettext_lazy("admin", "Times"))]
    return Chart(
        "reasons",
        title,
        str(pgettext_lazy("admin", "The reasons shoppers chose when they rated a reply not helpful.")),
        svg,
        [],
        headers,
        [[name, count_text(count)] for name, (_, count) in zip(names, reasons, strict=True)],
        [[reason, count] for reason, count in reasons],
        ranking=True,
    )


# --- the view -------------------------------------------------------------------------------------------------

#: Spreadsheet programs run a cell starting with one of these as a formula; shopper words are untrusted.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_response(chart: Chart, scope: Scope) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(chart.headers)
    writer.writerows([[_csv_cell(cell) for cell in row] for row in chart.raw])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    store = f"-{scope.store}" if scope.store else ""
    name = f"insights-{chart.key}-{scope.start.isoformat()}-{scope.end.isoformat()}{store}.csv"
    response["Content-Disposition"] = f'attachment; filename="{"".join(c for c in name if c.isalnum() or c in "-._")}"'
    return response


def insights_view(request: HttpRequest) -> HttpResponse:
    """The page, or with ``?csv=<chart>`` that chart's numbers as CSV; staff with conversation view permission."""
    if not request.user.has_perm("chat.view_conversation"):
        raise PermissionDenied
    form = InsightsForm(request.GET or None, initial={"period": "7"}, stores=stores())
    scope = scope_from(form, timezone.localdate())
    wanted = chart_builders(Data(scope)).get(request.GET.get("csv") or "")
    if wanted is not None:
        with _charts_language():
            return csv_response(wanted(), scope)
    total, headline, chart_list = build_charts(scope)
    context = {
        **admin.site.each_context(request),
        "title": pgettext_lazy("admin", "Insights"),
        "form": form,
        "scope": scope,
        "scope_query": scope.query_string(),
        "total": total,
        "headline": headline,
        "charts": chart_list,
        "summary": _summary(total, headline),
        "latest_down": latest_down(scope),
        "now_poll_seconds": now.POLL_SECONDS,
    }
    return TemplateResponse(request, "admin/insights.html", context)


def _summary(total: Totals, headline: dict[str, Any]) -> list[tuple[str, str]]:
    def maybe(value: float | None, fmt: Callable[[float], str]) -> str:
        return "—" if value is None else fmt(value)

    return [
        (str(pgettext_lazy("admin", "Conversations")), count_text(total.conversations)),
        (str(pgettext_lazy("admin", "Shoppers")), count_text(total.shoppers)),
        (str(pgettext_lazy("admin", "Turns")), count_text(total.turns)),
        (
            str(pgettext_lazy("admin", "Turns per conversation")),
            maybe(total.turns_per_conversation, lambda v: formatting.number(round(v, 1), 1)),
        ),
        (str(pgettext_lazy("admin", "Adds to cart")), count_text(total.adds)),
        (str(pgettext_lazy("admin", "Conversion")), maybe(total.conversion, percent_text)),
        (str(pgettext_lazy("admin", "Cart value")), money_text(float(total.cart_value))),
        (str(pgettext_lazy("admin", "Errors")), count_text(total.errors)),
        (
            str(pgettext_lazy("admin", "Median time to first token")),
            maybe(headline["first_token"].get("median"), duration_text),
        ),
        (str(pgettext_lazy("admin", "Median turn duration")), maybe(headline["duration"].get("median"), duration_text)),
        (str(pgettext_lazy("admin", "Replies rated helpful")), maybe(headline.get("rated_up"), percent_text)),
    ]


view = admin.site.admin_view(insights_view)
