"""Server-rendered SVG charts for the admin insights: no script, no CDN, nothing the CSP has to allow.

Each chart is drawn twice, wide (desktop) and narrow (phone), and CSS shows one: an SVG scales as a whole, so a
single drawing would have unreadably small text on a phone. The numbers are always in the data table beside the
chart (``templates/admin/insights.html``); the drawing is an image (``role="img"`` with a label) for people who
see it. Every text that reaches the SVG (dates, product names, shopper queries) is escaped here.

Colours are CSS classes (``vz-s1`` …), styled in ``static/chat/admin.css`` for light and dark admin themes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

Formatter = Callable[[float], str]

HEIGHT = 240
WIDE, NARROW = 640, 360
PAD_TOP, PAD_BOTTOM, PAD_RIGHT = 14, 30, 12
#: Series colours available in admin.css; more series than this reuse them.
COLOURS = 6
#: Horizontal bars: label column and bar thickness.
ROW = 26


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def colour(index: int) -> str:
    return f"vz-s{index % COLOURS + 1}"


def nice_step(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power: float = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def axis(peak: float, lines: int = 5) -> tuple[float, int]:
    """The y axis for values up to ``peak``: its top and its number of grid steps (at most ``lines``), so that
    every grid line sits on a round number (0, 50, 100 … rather than 0, 62, 125 …)."""
    step = nice_step(peak / lines) if peak > 0 else 1.0
    if peak >= 1 and step < 1:
        step = 1.0  # counts: no grid line at 0.5
    steps = max(1, math.ceil(peak / step - 1e-9)) if peak > 0 else 1
    return step * steps, steps


def _n(value: float) -> str:
    """A coordinate for the SVG: short, and never in exponent form."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, label: str, body: list[str], variant: str) -> SafeString:
    return format_html(
        '<svg class="vz-svg vz-svg-{}" viewBox="0 0 {} {}" role="img" aria-label="{}" focusable="false">{}</svg>',
        variant,
        width,
        height,
        label,
        mark_safe("".join(body)),  # every part was built with escape() or format_html
    )


def _left_pad(ticks: list[str]) -> int:
    return 14 + 7 * max((len(tick) for tick in ticks), default=1)


def _label_every(count: int, width: int) -> int:
    """Show every n-th x label so that labels (about 40 px each) do not overlap."""
    room = max(1, width // 46)
    return max(1, math.ceil(count / room))


def _axes(
    width: int, labels: Sequence[str], top: float, steps: int, fmt: Formatter, slot: float, left: int
) -> list[str]:
    """Horizontal grid lines with y values, and the x labels under the slots."""
    parts: list[str] = []
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    for step in range(steps + 1):
        value = top * step / steps
        y = PAD_TOP + plot_h * (1 - step / steps)
        parts.append(f'<line class="vz-grid" x1="{left}" x2="{width - PAD_RIGHT}" y1="{_n(y)}" y2="{_n(y)}"/>')
        parts.append(
            f'<text class="vz-tick" x="{left - 6}" y="{_n(y + 4)}" text-anchor="end">{escape(fmt(value))}</text>'
        )
    every = _label_every(len(labels), width - left)
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = left + slot * (index + 0.5)
        parts.append(f'<text class="vz-tick" x="{_n(x)}" y="{HEIGHT - 10}" text-anchor="middle">{escape(label)}</text>')
    return parts


def _draw_columns(
    width: int,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter,
    tick: Formatter,
    *,
    stacked: bool,
    title: str,
) -> SafeString:
    totals = [
        sum(s.values[i] or 0 for s in series) if stacked else max((s.values[i] or 0 for s in series), default=0)
        for i in range(len(labels))
    ]
    top, steps = axis(max(totals, default=0))
    left = _left_pad([tick(top * step / steps) for step in range(steps + 1)])
    slot = (width - left - PAD_RIGHT) / max(1, len(labels))
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = _axes(width, labels, top, steps, tick, slot, left)
    group = slot * 0.8
    bar = group if stacked else group / max(1, len(series))
    for index, label in enumerate(labels):
        base: float = PAD_TOP + plot_h
        x0 = left + slot * index + (slot - group) / 2
        for number, one in enumerate(series):
            value = one.values[index] or 0
            if value <= 0:
                continue
            height = plot_h * value / top
            x = x0 if stacked else x0 + bar * number
            y = base - height
            parts.append(
                f'<rect class="{colour(number)}" x="{_n(x)}" y="{_n(y)}" width="{_n(max(bar - 1, 1))}" '
                f'height="{_n(height)}"><title>{escape(label)} · {escape(one.name)}: {escape(fmt(value))}</title>'
                "</rect>"
            )
            if stacked:
                base = y
    return _svg(width, HEIGHT, title, parts, "wide" if width == WIDE else "narrow")


def _draw_lines(
    width: int, labels: Sequence[str], series: Sequence[Series], fmt: Formatter, tick: Formatter, title: str
) -> SafeString:
    peak = max((v for s in series for v in s.values if v is not None), default=0)
    top, steps = axis(peak)
    left = _left_pad([tick(top * step / steps) for step in range(steps + 1)])
    slot = (width - left - PAD_RIGHT) / max(1, len(labels))
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = _axes(width, labels, top, steps, tick, slot, left)
    for number, one in enumerate(series):
        points: list[tuple[float, float, str, float]] = []
        for index, value in enumerate(one.values):
            if value is None:
                continue
            x = left + slot * (index + 0.5)
            points.append((x, PAD_TOP + plot_h * (1 - value / top), labels[index], value))
        # A gap (a day without data) breaks the line, so one path per run of consecutive days would be exact;
        # a single polyline over the days that have data reads better and the table has the gaps.
        if len(points) > 1:
            coords = " ".join(f"{_n(x)},{_n(y)}" for x, y, _, _ in points)
            parts.append(f'<polyline class="vz-line {colour(number)}" points="{coords}"/>')
        for x, y, label, value in points:
            parts.append(
                f'<circle class="vz-dot {colour(number)}" cx="{_n(x)}" cy="{_n(y)}" r="3">'
                f"<title>{escape(label)} · {escape(one.name)}: {escape(fmt(value))}</title></circle>"
            )
    return _svg(width, HEIGHT, title, parts, "wide" if width == WIDE else "narrow")


def _draw_rows(width: int, labels: Sequence[str], values: Sequence[float], fmt: Formatter, title: str) -> SafeString:
    """Horizontal bars, one per label (top products, queries): the label above its bar, the value after it."""
    top = max(values, default=0) or 1
    height = PAD_TOP + ROW * 1.6 * max(1, len(labels))
    parts: list[str] = []
    value_room = 70
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = PAD_TOP + index * ROW * 1.6
        length = (width - value_room - 8) * value / top
        short = label if len(label) <= 60 else label[:59] + "…"
        parts.append(f'<text class="vz-row-label" x="4" y="{_n(y + 10)}">{escape(short)}</text>')
        parts.append(
            f'<rect class="{colour(0)}" x="4" y="{_n(y + 15)}" width="{_n(max(length, 1))}" height="{ROW - 12}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
        parts.append(f'<text class="vz-tick" x="{_n(length + 10)}" y="{_n(y + 24)}">{escape(fmt(value))}</text>')
    return _svg(width, int(height), title, parts, "wide" if width == WIDE else "narrow")


def columns(
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter,
    *,
    title: str,
    stacked: bool = False,
    tick: Formatter | None = None,
) -> SafeString:
    """Vertical bars per label (grouped, or stacked), wide and narrow; ``tick`` formats the y axis (``fmt``)."""
    tick = tick or fmt
    return SafeString(
        _draw_columns(WIDE, labels, series, fmt, tick, stacked=stacked, title=title)
        + _draw_columns(NARROW, labels, series, fmt, tick, stacked=stacked, title=title)
    )


def lines(
    labels: Sequence[str], series: Sequence[Series], fmt: Formatter, *, title: str, tick: Formatter | None = None
) -> SafeString:
    """A line per series over the days; with fewer than three days, bars say more than a dot or a segment."""
    if len(labels) < 3:
        return columns(labels, series, fmt, title=title, tick=tick)
    tick = tick or fmt
    return SafeString(
        _draw_lines(WIDE, labels, series, fmt, tick, title) + _draw_lines(NARROW, labels, series, fmt, tick, title)
    )


def rows(labels: Sequence[str], values: Sequence[float], fmt: Formatter, *, title: str) -> SafeString:
    """Horizontal bars for a ranking, wide and narrow."""
    return SafeString(_draw_rows(WIDE, labels, values, fmt, title) + _draw_rows(NARROW, labels, values, fmt, title))
