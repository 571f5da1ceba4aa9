"""``chat.ops.limits``: the turn's time limits agree with each other."""

from __future__ import annotations

from typing import Any

from chat.ops.limits import limits


def test_a_busy_flag_is_not_stale_while_its_turn_may_still_run(settings: Any) -> None:
    """A busy flag older than ``busy`` may be claimed over by another process; the turn task may run for ``task``.
    With ``busy`` shorter (by the finishing margin), a turn still running let a second turn start beside it, and the
    first one's end was stored inside the second."""
    for line in (0, 90):
        settings.VIZOCHOK_LINE_MAX_WAIT = line
        assert limits().busy > limits().task  # and its end stored after the cut
