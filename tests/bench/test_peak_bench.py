"""The peak-hour benchmark's ideal lines (``bench.peak_bench``), on cases small enough to work out by hand."""

from __future__ import annotations

import pytest

from bench.peak_bench import (
    busy_while_waiting,
    fifo_waits,
    idle_while_waiting,
    in_arrival_order,
    round_robin_waits,
    shares,
)


def test_an_ideal_fifo_serves_in_arrival_order_and_gives_the_waits_back_in_the_arrivals_order() -> None:
    # One slot: (0, 2 s) is served at once and holds it until 2; (1, 1 s) waits 1 s.
    assert fifo_waits([(1.0, 1.0), (0.0, 2.0)], 1) == [0.0, 1.0]  # sorted by arrival
    assert in_arrival_order([(1.0, 1.0), (0.0, 2.0)], 1) == [1.0, 0.0]  # as given
    # Two slots: the third turn takes the slot that frees first (at 1).
    assert in_arrival_order([(0.0, 3.0), (0.0, 1.0), (0.5, 1.0)], 2) == [0.0, 0.0, 0.5]


def test_an_ideal_round_robin_serves_nobody_late_without_contention() -> None:
    assert round_robin_waits([(0.0, 1.0, "a"), (2.0, 1.0, "b"), (3.5, 1.0, "a")], 1) == [0.0, 0.0, 0.0]


def test_an_ideal_round_robin_puts_a_flooding_address_behind_itself() -> None:
    # One slot, 1 s a turn. The flood's first turn is served at once (round 0); its next two queue for rounds 1 and
    # 2; a shopper of another address coming at 0.3 gets round 0, so it is next when the slot frees at 1.
    arrivals = [(0.0, 1.0, "flood"), (0.1, 1.0, "flood"), (0.2, 1.0, "flood"), (0.3, 1.0, "shop")]
    assert round_robin_waits(arrivals, 1) == pytest.approx([0.0, 1.9, 2.8, 0.7])
    # A FIFO of the same arrivals serves the shopper last.
    assert in_arrival_order([(a, s) for a, s, _address in arrivals], 1) == pytest.approx([0.0, 0.9, 1.8, 2.7])


def test_an_ideal_round_robin_gives_each_address_one_turn_a_round_in_arrival_order_within_it() -> None:
    # One slot, 1 s a turn. a1 is served at once; a2 queues for round 1; b1 (round 0) goes before it, b2 (round 1)
    # after it: a round's tickets go in the order they came.
    arrivals = [(0.0, 1.0, "a"), (0.0, 1.0, "a"), (0.01, 1.0, "b"), (0.02, 1.0, "b")]
    assert round_robin_waits(arrivals, 1) == pytest.approx([0.0, 2.0, 0.99, 2.98])


def test_an_ideal_round_robin_is_work_conserving() -> None:
    # Two slots and one address: its turns are the only ones waiting, so they get every slot as it frees.
    arrivals = [(0.0, 1.0, "flood")] * 4
    assert round_robin_waits(arrivals, 2) == pytest.approx([0.0, 0.0, 1.0, 1.0])


def test_the_flooders_share_counts_the_upstream_time_of_turns_started_since_the_line_was_contended() -> None:
    starts, services, flooder = [0.0, 1.0, 2.0], [1.0, 1.0, 2.0], [True, False, True]
    assert shares(starts, services, flooder, since=1.0) == pytest.approx(2 / 3)
    assert shares(starts, services, flooder, since=0.0) == pytest.approx(3 / 4)
    assert shares(starts, services, flooder, since=5.0) == 0.0


def test_an_ideal_round_robin_moves_the_round_on_when_an_address_is_served_again_at_once() -> None:
    # Three slots. b and a are served at once in round 0; a again at once, in round 1, which makes the line's round 1
    # (as RedisSlots' join grants through its try). Then a's next ticket gets round 2 and b's round 1: when a's short
    # turn frees its slot at 1, b goes first although a's ticket came earlier; a's goes when b's frees at 2.
    arrivals = [(0.0, 10.0, "b"), (0.0, 10.0, "a"), (0.0, 1.0, "a"), (0.1, 1.0, "a"), (0.2, 1.0, "b")]
    assert round_robin_waits(arrivals, 3) == pytest.approx([0.0, 0.0, 0.0, 1.9, 0.8])


def test_the_slot_time_missing_while_turns_wait_is_split_between_idle_sockets_and_no_socket() -> None:
    """Two slots; a turn waits from 0 to 10. Socket 1 serves 0-4, then sits idle until its close at 6; socket 2
    serves throughout; socket 3 opens at 7 and serves. Missing: 4-6 an idle open socket, 6-7 no socket."""
    events = [
        (0.0, "open", 1),
        (0.0, "start", 1),
        (0.0, "open", 2),
        (0.0, "start", 2),
        (4.0, "end", 1),
        (6.0, "close", 1),
        (7.0, "open", 3),
        (7.5, "start", 3),
    ]
    waits = [(0.0, 10.0)]
    assert idle_while_waiting(events, waits, 2) == {"idle_open_socket_slot_s": 2.0, "no_socket_slot_s": 1.0}
    assert busy_while_waiting(events, waits, 2) == pytest.approx(0.7)
