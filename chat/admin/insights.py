"""``/admin/insights/``: what the assistant does for the store, per day, drawn as SVG charts with their numbers.

Everything is read from ``Turn`` rows (one per finished turn, written by ``chat.store.record_turn``), never from
message payloads: a page over 30 days of a busy store aggregates tens of thousands of small rows through the
``day`` indexes, in a fixed number of queries whatever the period (``manage.py bench_insights`` measures it).

Definitions, as the page states them:

- conversations of a day: conversations with at least one turn that day; shoppers: their distinct user ids;
- conversion: the share of those conversations with at least one add to the cart;
- cart value: for each conversation with an add, the largest cart total after an add, summed;
- time to first token and duration: median and 95th percentile (nearest rank) of the turns that have them;
- queries without products: the shopper's words of answered turns whose reply showed no product card.

Staff with the conversation view permission may see it (they can read the conversations themselves anyway).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.safestring import SafeString
from django.utils.translation import pgettext_lazy

from chat.admin import charts
from chat.admin.codes import error_detail, error_name
from chat.models import Turn
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
        self.fields["store"].choices = [
            ("", pgettext_lazy("admin", "All stores")),
            *((store, store or "—") for store in stores),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
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


def _where(scope: Scope) -> tuple[str, list[Any]]:
    sql = "day >= %s AND day <= %s"
    params: list[Any] = [
        connection.ops.adapt_datefield_value(scope.start),
        connection.ops.adapt_datefield_value(scope.end),
    ]
    if scope.store:
        sql += " AND store_id = %s"
        params.append(scope.store)
    return sql, params


def _turns(scope: Scope) -> QuerySet[Turn]:
    turns = Turn.objects.filter(day__gte=scope.start, day__lte=scope.end)
    return turns.filter(store_id=scope.store) if scope.store else turns


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


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


def daily(scope: Scope) -> dict[date, Day]:
    """Conversations, turns, adds, conversions, cart value and shoppers per day: one query, grouped twice.

    The inner grouping is one row per conversation and day (its turns, adds and fullest cart after an add); the
    outer one sums those per day. ``user_id`` is constant within a conversation, so it rides in the inner key.
    """
    where, params = _where(scope)
    table = connection.ops.quote_name(Turn._meta.db_table)
    rows = _fetch(
        "SELECT day, COUNT(*), SUM(turns), SUM(adds), SUM(CASE WHEN adds > 0 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN adds > 0 THEN cart END), COUNT(DISTINCT user_id) FROM ("
        "SELECT day, conversation_id, user_id, COUNT(*) AS turns, SUM(cart_adds) AS adds, "
        f"MAX(CASE WHEN cart_adds > 0 THEN cart_total END) AS cart FROM {table} WHERE {where} "
        "GROUP BY day, conversation_id, user_id) per_conversation GROUP BY day",
        params,
    )
    return {
        _day(day): Day(int(conversations), int(turns), int(adds or 0), int(converted), _decimal(cart), int(shoppers))
        for day, conversations, turns, adds, converted, cart, shoppers in rows
    }


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


def totals(scope: Scope) -> Totals:
    """The period as a whole (a conversation spanning two days counts once): two queries."""
    where, params = _where(scope)
    table = connection.ops.quote_name(Turn._meta.db_table)
    rows = _fetch(
        "SELECT turns, converted, COUNT(*), SUM(cart) FROM (SELECT conversation_id, COUNT(*) AS turns, "
        "MAX(CASE WHEN cart_adds > 0 THEN 1 ELSE 0 END) AS converted, "
        f"MAX(CASE WHEN cart_adds > 0 THEN cart_total END) AS cart FROM {table} WHERE {where} "
        "GROUP BY conversation_id) per_conversation GROUP BY turns, converted",
        params,
    )
    result = Totals()
    for turns, converted, count, cart in rows:
        result.conversations += count
        result.converted += count if converted else 0
        result.turns += turns * count
        result.cart_value += _decimal(cart)
        result.depth[int(turns)] += count
    flat = _turns(scope).aggregate(
        shoppers=Count("user_id", distinct=True),
        adds=Sum("cart_adds"),
        errors=Count("pk", filter=~Q(error_code="")),
    )
    result.shoppers, result.adds, result.errors = flat["shoppers"], flat["adds"] or 0, flat["errors"]
    return result


def errors(scope: Scope) -> dict[str, dict[date, int]]:
    """Turns that ended with an error, per code and day."""
    rows = _turns(scope).exclude(error_code="").values_list("day", "error_code").annotate(n=Count("pk"))
    result: dict[str, dict[date, int]] = defaultdict(dict)
    for day, code, count in rows.order_by():
        result[code][_day(day)] = count
    return dict(result)


#: Percentiles, as (key, numerator of the nearest rank over 100).
PERCENTILES = (("median", 50), ("p95", 95))


def latency(scope: Scope) -> dict[tuple[str, date | None], dict[str, int]]:
    """Median and 95th percentile of time to first token and of duration, per day and (day None) overall.

    Nearest-rank percentiles from ``ROW_NUMBER()`` over each partition, the same SQL on SQLite (≥ 3.25) and
    PostgreSQL, in one round trip: the database sorts, only the picked rows travel.
    """
    where, params = _where(scope)
    table = connection.ops.quote_name(Turn._meta.db_table)
    branches, all_params = [], []
    for metric, column in (("first_token", "first_token_ms"), ("duration", "duration_ms")):
        for per_day in (True, False):
            partition = "PARTITION BY day " if per_day else ""
            branches.append(
                f"SELECT '{metric}' AS metric, {'day' if per_day else 'NULL'} AS day, {column} AS value, "
                f"ROW_NUMBER() OVER ({partition}ORDER BY {column}) AS rn, COUNT(*) OVER ({partition.strip()}) AS cnt "
                f"FROM {table} WHERE {where} AND {column} IS NOT NULL"
            )
            all_params += params
    picks = " OR ".join(f"rn = (cnt * {share} + 99) / 100" for _, share in PERCENTILES)
    rows = _fetch(
        f"SELECT metric, day, value, rn, cnt FROM ({' UNION ALL '.join(branches)}) ranked WHERE {picks}", all_params
    )
    result: dict[tuple[str, date | None], dict[str, int]] = defaultdict(dict)
    for metric, day, value, rank, count in rows:
        key = (metric, None if day is None else _day(day))
        for name, share in PERCENTILES:
            if rank == (count * share + 99) // 100:
                result[key][name] = int(value)
    return dict(result)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    adds: int
    quantity: Decimal


def top_products(scope: Scope, limit: int = TOP) -> list[Product]:
    """Products by the number of times shoppers added them, from the turns that added something."""
    adds: Counter[str] = Counter()
    quantities: dict[str, Decimal] = defaultdict(Decimal)
    names: dict[str, str] = {}
    for added in _turns(scope).filter(cart_adds__gt=0).values_list("added", flat=True).iterator(chunk_size=2000):
        for item in added if isinstance(added, list) else ():
            if not isinstance(item, dict):
                continue
            sku = str(item.get("sku") or "")
            name = str(item.get("name") or "")
            key = sku or name
            if not key:
                continue
            adds[key] += 1
            quantities[key] += formatting.to_decimal(item.get("quantity")) or Decimal(0)
            names[key] = name or names.get(key, "") or sku
    ranked = sorted(adds.items(), key=lambda item: (-item[1], names[item[0]].casefold(), item[0]))[:limit]
    return [Product(key, names[key], count, quantities[key]) for key, count in ranked]


@dataclass(frozen=True)
class Query:
    text: str
    count: int


def missing_queries(scope: Scope, limit: int = TOP) -> list[Query]:
    """The shopper's words most often answered without a product card: what the catalog (or the search) lacks.

    Grouped by exact text in SQL, then by case-folded, space-normalised text here ("Молоко" and "молоко " are one
    query), shown in its most frequent spelling.
    """
    rows = (
        _turns(scope)
        .filter(outcome=Turn.Outcome.ANSWERED, had_cards=False)
        .exclude(query="")
        .values_list("query")
        .annotate(n=Count("pk"))
        .order_by("-n", "query")[:QUERY_GROUPS]
    )
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for text, count in rows:
        key = " ".join(text.casefold().split())
        counts[key] += count
        spellings[key][" ".join(text.split())] += count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [Query(min(spellings[key].items(), key=lambda s: (-s[1], s[0]))[0], count) for key, count in ranked]


def stores() -> list[str]:
    """Stores with recorded turns: DISTINCT over the leading column of the (store_id, day) index."""
    return list(Turn.objects.order_by("store_id").values_list("store_id", flat=True).distinct()[:STORE_CHOICES])


# --- presentation ---------------------------------------------------------------------------------------------


def count_text(value: float) -> str:
    return formatting.number(round(value), 0)


def money_text(value: float) -> str:
    return formatting.money(Decimal(str(value)).quantize(Decimal("0.01")))


def percent_text(value: float) -> str:
    return f"{formatting.number(round(value, 1), 1)}\u00a0%"


def seconds_text(milliseconds: float) -> str:
    unit = pgettext_lazy("admin", "s")  # seconds
    return f"{formatting.number(round(milliseconds / 1000, 1), 1)}\u00a0{unit}"


def money_tick(value: float) -> str:
    """An axis label in whole hryvnias: the kopiyky only widen the axis."""
    return formatting.money(round(value)).replace(",00", "")


def percent_tick(value: float) -> str:
    return f"{formatting.number(round(value), 0)}\u00a0%"


def day_text(day: date) -> str:
    return formats.date_format(day, "SHORT_DATE_FORMAT")


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
) -> Chart:
    labels = [axis_day(day) for day in days]
    series = [charts.Series(name, values) for name, values, _ in columns]
    fmt = columns[0][2]
    tick = {money_text: money_tick, percent_text: percent_tick}.get(fmt, fmt)
    if kind == "lines":
        svg = charts.lines(labels, series, fmt, title=str(title), tick=tick)
    else:
        svg = charts.columns(labels, series, fmt, title=str(title), stacked=kind == "stacked", tick=tick)
    headers, shown, raw = _table(days, columns)
    details = details or {}
    legend = [(name, charts.colour(index), details.get(name, "")) for index, (name, _, _) in enumerate(columns)]
    return Chart(key, str(title), str(note), svg, legend, headers, shown, raw)


def build_charts(scope: Scope) -> tuple[Totals, dict[str, Any], list[Chart]]:
    """Every number of the page for ``scope``: the period's totals, headline latencies and the charts."""
    days = scope.days
    per_day = daily(scope)
    total = totals(scope)
    by_code = errors(scope)
    times = latency(scope)
    empty = Day()

    def series(pick: Callable[[Day], float | None]) -> list[float | None]:
        return [pick(per_day.get(day, empty)) for day in days]

    def timing(metric: str, name: str) -> list[float | None]:
        return [times.get((metric, day), {}).get(name) for day in days]

    result = [
        _day_chart(
            "activity",
            pgettext_lazy("admin", "Conversations and turns"),
            pgettext_lazy("admin", "Conversations with at least one turn that day, and their turns."),
            days,
            [
                (str(pgettext_lazy("admin", "Conversations")), series(lambda d: d.conversations), count_text),
                (str(pgettext_lazy("admin", "Turns")), series(lambda d: d.turns), count_text),
            ],
            kind="columns",
        ),
        _day_chart(
            "shoppers",
            pgettext_lazy("admin", "Shoppers"),
            pgettext_lazy("admin", "Distinct shoppers who sent at least one message that day."),
            days,
            [(str(pgettext_lazy("admin", "Shoppers")), series(lambda d: d.shoppers), count_text)],
        ),
        _depth_chart(total),
        _day_chart(
            "adds",
            pgettext_lazy("admin", "Adds to cart"),
            pgettext_lazy("admin", "Products added to the cart through the assistant."),
            days,
            [(str(pgettext_lazy("admin", "Adds to cart")), series(lambda d: d.adds), count_text)],
            kind="columns",
        ),
        _day_chart(
            "cart_value",
            pgettext_lazy("admin", "Cart value"),
            pgettext_lazy("admin", "For each conversation with an add, its fullest cart after an add; summed per day."),
            days,
            [(str(pgettext_lazy("admin", "Cart value")), series(lambda d: float(d.cart_value)), money_text)],
            kind="columns",
        ),
        _day_chart(
            "conversion",
            pgettext_lazy("admin", "Conversion"),
            pgettext_lazy("admin", "Share of the day's conversations with at least one add to the cart."),
            days,
            [(str(pgettext_lazy("admin", "Conversion")), series(lambda d: d.conversion), percent_text)],
        ),
        _errors_chart(days, by_code),
        _day_chart(
            "first_token",
            pgettext_lazy("admin", "Time to first token"),
            pgettext_lazy("admin", "From the shopper's send to the first word of the reply."),
            days,
            [
                (str(pgettext_lazy("admin", "Median")), timing("first_token", "median"), seconds_text),
                (str(pgettext_lazy("admin", "95th percentile")), timing("first_token", "p95"), seconds_text),
            ],
        ),
        _day_chart(
            "duration",
            pgettext_lazy("admin", "Turn duration"),
            pgettext_lazy("admin", "From the shopper's send to the end of the reply (or its error)."),
            days,
            [
                (str(pgettext_lazy("admin", "Median")), timing("duration", "median"), seconds_text),
                (str(pgettext_lazy("admin", "95th percentile")), timing("duration", "p95"), seconds_text),
            ],
        ),
        _products_chart(top_products(scope)),
        _queries_chart(missing_queries(scope)),
    ]
    headline = {
        "first_token": times.get(("first_token", None), {}),
        "duration": times.get(("duration", None), {}),
    }
    return total, headline, result


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
    total, headline, chart_list = build_charts(scope)
    wanted = request.GET.get("csv")
    if wanted:
        for chart in chart_list:
            if chart.key == wanted:
                return csv_response(chart, scope)
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
            maybe(headline["first_token"].get("median"), seconds_text),
        ),
        (str(pgettext_lazy("admin", "Median turn duration")), maybe(headline["duration"].get("median"), seconds_text)),
    ]


view = admin.site.admin_view(insights_view)
