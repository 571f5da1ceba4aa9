"""``chat_tags``: the message-time filters give what Django's ``date``/``time`` filters give for their formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.template import Context, Template
from django.utils import timezone

MOMENTS = [
    datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # an hour before Kyiv's clocks go forward
    datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 30, 0, 123456, tzinfo=UTC),  # they go back; microseconds kept
    datetime(2026, 11, 29, 23, 5, 7, tzinfo=UTC),  # another day in Kyiv
    datetime(2026, 1, 1, 12, 0),  # naive: shown as it is
]


@pytest.mark.parametrize("zone", ["Europe/Kyiv", "America/New_York", "UTC"])
@pytest.mark.parametrize("moment", MOMENTS)
def test_iso_time_and_clock_match_django_filters(zone: str, moment: datetime) -> None:
    ours = Template("{% load chat_tags %}{{ t|iso_time }} {{ t|clock }}")
    django = Template("{{ t|date:'c' }} {{ t|time:'H:i' }}")
    with timezone.override(zone):
        assert ours.render(Context({"t": moment})) == django.render(Context({"t": moment}))


def test_anything_else_renders_empty() -> None:
    assert Template("{% load chat_tags %}[{{ t|iso_time }}][{{ t|clock }}]").render(Context({"t": "x"})) == "[][]"
