"""The reconnect schedule of reference §12: 1 s doubling to a 10 s cap, ±25 % jitter, 30 attempts."""

from __future__ import annotations

import itertools

import pytest

from chat.vizochok.backoff import INITIAL_DELAY, JITTER, MAX_ATTEMPTS, MAXIMUM_DELAY, Backoff


def fixed(value: float) -> Backoff:
    return Backoff(random=lambda: value)


def test_defaults_are_the_sdk_schedule() -> None:
    assert (INITIAL_DELAY, MAXIMUM_DELAY, JITTER, MAX_ATTEMPTS) == (1.0, 10.0, 0.25, 30)
    assert Backoff() == Backoff(1.0, 10.0, 0.25, 30)


def test_exact_schedule_without_jitter() -> None:
    # random() == 0.5 makes the jitter factor exactly 1.
    assert list(fixed(0.5).delays()) == [1.0, 2.0, 4.0, 8.0] + [10.0] * 26


def test_jitter_extremes() -> None:
    assert fixed(0.0).delay(0) == pytest.approx(0.75)
    assert fixed(1.0).delay(0) == pytest.approx(1.25)
    assert fixed(0.0).delay(10) == pytest.approx(7.5)
    assert fixed(1.0).delay(10) == pytest.approx(12.5)


def test_injected_random_is_used_in_order() -> None:
    values = itertools.cycle([0.0, 1.0, 0.5])
    backoff = Backoff(max_attempts=4, random=lambda: next(values))
    assert list(backoff.delays()) == pytest.approx([0.75, 2.5, 4.0, 6.0])


def test_real_random_stays_within_jitter_bounds() -> None:
    backoff = Backoff()
    for attempt in range(40):
        base = min(2.0**attempt, 10.0)
        for _ in range(50):
            assert base * 0.75 <= backoff.delay(attempt) <= base * 1.25


def test_cap_holds_for_huge_attempts() -> None:
    assert fixed(0.5).delay(10_000) == 10.0


def test_max_attempts_bounds_the_iterator() -> None:
    assert len(list(Backoff().delays())) == 30
    assert list(Backoff(max_attempts=0).delays()) == []
    assert len(list(Backoff(max_attempts=3).delays())) == 3


def test_custom_parameters() -> None:
    backoff = Backoff(initial=0.5, maximum=3.0, jitter=0.0, max_attempts=5)
    assert list(backoff.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1.0}, {"maximum": -1.0}, {"jitter": 1.5}, {"jitter": -0.1}, {"max_attempts": -1}],
)
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="from 0"):
        Backoff().delay(-1)


def test_js_constants() -> None:
    assert Backoff().as_js() == {
        "initialMs": 1000,
        "maximumMs": 10000,
        "jitter": 0.25,
        "maxAttempts": 30,
        "noReconnectCodes": [4001, 4002, 4003, 4004],
    }
