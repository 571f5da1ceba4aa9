"""``chat.turns.states``: the runner's lifecycle table, on its own (no loop, no database, no socket)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.turns.states import (
    FALLBACK,
    RUNNING,
    TELLS,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    allows,
    step,
)

S, E = State, Event

#: The table as the module's docstring draws it, written out again: a change to either shows here.
DRAWN: dict[tuple[State, Event], State] = {
    (S.IDLE, E.START): S.STARTING,
    (S.PARKED, E.START): S.STARTING,
    (S.CLOSING, E.START): S.STARTING,
    (S.STARTING, E.OPENED): S.STREAMING,
    (S.STARTING, E.STOP): S.STOPPING,
    (S.STREAMING, E.STOP): S.STOPPING,
    (S.STARTING, E.END): S.FINISHING,
    (S.STREAMING, E.END): S.FINISHING,
    (S.STOPPING, E.END): S.FINISHING,
    (S.FINISHING, E.PARK): S.FINISHING_PARKED,
    (S.FINISHING_PARKED, E.RECLAIM): S.FINISHING,
    (S.FINISHING_PARKED, E.DONE): S.PARKED,
    (S.FINISHING, E.DONE): S.CLOSING,
    (S.PARKED, E.RECLAIM): S.CLOSING,
    (S.CLOSING, E.CLOSED): S.IDLE,
    **{(state, E.SHUTDOWN): S.CLOSED for state in S},
    **{(S.CLOSED, event): S.CLOSED for event in E},
}


@pytest.mark.parametrize(("state", "event"), list(DRAWN))
def test_every_drawn_transition_is_taken(state: State, event: Event) -> None:
    assert allows(state, event)
    assert step(state, event) is DRAWN[state, event]


ILLEGAL = [pair for pair in itertools.product(S, E) if pair not in DRAWN]


def test_the_table_holds_nothing_but_the_drawn_transitions() -> None:
    table = {(state, event): target for state, events in TRANSITIONS.items() for event, target in events.items()}
    assert table == DRAWN
    assert len(ILLEGAL) > 40  # most pairs are bugs, not no-ops


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_an_event_the_state_does_not_allow_is_refused_loudly(state: State, event: Event) -> None:
    assert not allows(state, event)
    with pytest.raises(IllegalTransition) as refused:
        step(state, event)
    assert (refused.value.state, refused.value.event) == (state, event)
    # Outside the test suite the runner goes on where the event usually leads (and logs it).
    assert step(state, event, strict=False) is FALLBACK[event]


def test_a_fallback_is_a_target_the_event_really_has() -> None:
    for event, target in FALLBACK.items():
        assert any(TRANSITIONS[state].get(event) is target for state in S if state is not S.CLOSED), event


def test_a_turn_is_running_from_its_start_until_its_end_is_stored() -> None:
    assert {step(state, E.START) for state in S if allows(state, E.START)} <= RUNNING | {S.CLOSED}
    for state in RUNNING:
        assert not allows(state, E.START)  # one turn at a time: a second start is a bug
        assert allows(state, E.SHUTDOWN)
    assert {step(S.FINISHING, E.DONE), step(S.FINISHING_PARKED, E.DONE)}.isdisjoint(RUNNING)
    # Only ``done`` leaves the running states (or the shutdown): "ready" is told exactly when a turn is over.
    leaving = {
        event
        for state in RUNNING
        for event, target in TRANSITIONS[state].items()
        if target not in RUNNING and event is not E.SHUTDOWN
    }
    assert leaving == {E.DONE}


def test_the_tabs_hear_busy_on_start_and_ready_on_done_only() -> None:
    assert dict(TELLS) == {E.START: "busy", E.DONE: "ready"}


@given(st.lists(st.sampled_from(list(E)), max_size=60))
def test_any_run_of_allowed_events_tells_busy_and_ready_in_turn(events: list[Event]) -> None:
    """Whatever the order of (allowed) events, each "busy" is followed by exactly one "ready" before the next
    "busy", and a running state is never left without "ready" but by the relay's shutdown."""
    state, told = S.IDLE, []
    for event in events:
        if not allows(state, event) or state is S.CLOSED:
            continue
        before, state = state, step(state, event)
        if event in TELLS:
            told.append(TELLS[event])
        if before in RUNNING and state not in RUNNING and event is not E.SHUTDOWN:
            assert told[-1] == "ready"
        assert (state in RUNNING) == (bool(told) and told[-1] == "busy") or event is E.SHUTDOWN
    assert all(a != b for a, b in itertools.pairwise(told))
    assert not told or told[0] == "busy"


def test_every_state_can_get_back_to_idle_and_none_is_a_dead_end() -> None:
    for start in S:
        if start is S.CLOSED:
            continue
        seen: set[State] = {start}
        todo: list[State] = [start]
        while todo:
            for target in TRANSITIONS[todo.pop()].values():
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        assert S.IDLE in seen, start
