"""The upstream's per-socket message window (reference §14: 10 messages a minute), counted before sending."""

from __future__ import annotations

from chat.turns.window import SlidingWindow


def test_sliding_window_counts_and_ages_out() -> None:
    now = [0.0]
    window = SlidingWindow(limit=2, seconds=60, clock=lambda: now[0])
    assert window.retry_after() == 0
    window.record()
    now[0] = 10
    window.record()
    assert window.retry_after() == 50
    now[0] = 60
    assert window.retry_after() == 0
