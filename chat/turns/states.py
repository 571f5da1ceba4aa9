"""A conversation runner's lifecycle (``chat.turns.runner``): its states and every transition, in one table.

Pure data and one pure function, no Django and no I/O, so every transition is unit-tested on its own
(tests/chat/turns/test_states.py). The runner feeds events in (:meth:`ConversationRunner._to`) and acts on the
state that comes out; the tabs hear of the turn only on two events (:data:`TELLS`): ``start`` makes every tab
"busy" and ``done`` makes it "ready", both through the conversation's feed (``chat.feed.feed``).

A turn (``running`` from ``start`` until its end is stored)::

    idle|parked|closing --start--> starting         a turn is claimed; its slot and socket are being got
    starting --opened--> streaming                  a slot is held and the socket resumes the conversation
    starting|streaming --stop--> stopping           the shopper's stop: the task is cancelled, what streamed kept
    starting|streaming|stopping --end--> finishing  whatever ended it (reply, error, timeout, stop, drop)
    finishing --park--> finishing-parked            the upstream is done: its socket is kept warm (and offered to
                                                    the line) while the turn's end is still being stored
    finishing-parked --reclaim--> finishing         a waiting turn took the warm socket's slot meanwhile
    finishing-parked --done--> parked               the end is stored, "ready" told; the socket waits warm
    finishing --done--> closing                     the end is stored, "ready" told; the socket is closing

Between turns::

    parked --reclaim--> closing                     the idle grace ran out, or another turn waits for the slot
    closing --closed--> idle                        socket shut, slot given back; the relay forgets the runner
    any --shutdown--> closed                        the relay closes (graceful shutdown, tests)
    closed --any--> closed                          a shielded turn end finishing after the shutdown

``parked --start`` reuses the warm socket; ``closing --start`` waits for the close, then opens a fresh one. An event
a state does not list is a bug: :func:`step` raises :class:`IllegalTransition` when ``strict`` (tests), and
otherwise the runner logs it and takes the event's usual target (:data:`FALLBACK`), so the state follows what the
runner does. Events that may arrive stale (a timer's reclaim after the socket was reused) are checked with
:func:`allows` first and then not sent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal


class State(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    STREAMING = "streaming"
    STOPPING = "stopping"
    FINISHING = "finishing"
    FINISHING_PARKED = "finishing-parked"
    PARKED = "parked"
    CLOSING = "closing"
    CLOSED = "closed"


class Event(enum.Enum):
    START = "start"
    OPENED = "opened"
    STOP = "stop"
    END = "end"
    PARK = "park"
    RECLAIM = "reclaim"
    DONE = "done"
    CLOSED = "closed"
    SHUTDOWN = "shutdown"


S, E = State, Event

#: Every legal transition: state -> {event: next state}. ``closed`` takes every event and stays (see the docstring).
TRANSITIONS: Mapping[State, Mapping[Event, State]] = MappingProxyType(
    {
        S.IDLE: {E.START: S.STARTING, E.SHUTDOWN: S.CLOSED},
        S.STARTING: {E.OPENED: S.STREAMING, E.STOP: S.STOPPING, E.END: S.FINISHING, E.SHUTDOWN: S.CLOSED},
        S.STREAMING: {E.STOP: S.STOPPING, E.END: S.FINISHING, E.SHUTDOWN: S.CLOSED},
        S.STOPPING: {E.END: S.FINISHING, E.SHUTDOWN: S.CLOSED},
        S.FINISHING: {E.PARK: S.FINISHING_PARKED, E.DONE: S.CLOSING, E.SHUTDOWN: S.CLOSED},
        S.FINISHING_PARKED: {E.RECLAIM: S.FINISHING, E.DONE: S.PARKED, E.SHUTDOWN: S.CLOSED},
        S.PARKED: {E.START: S.STARTING, E.RECLAIM: S.CLOSING, E.SHUTDOWN: S.CLOSED},
        S.CLOSING: {E.START: S.STARTING, E.CLOSED: S.IDLE, E.SHUTDOWN: S.CLOSED},
        S.CLOSED: dict.fromkeys(E, S.CLOSED),
    }
)

#: Where an illegal event leads when the runner recovers from it: its target from its usual source.
FALLBACK: Mapping[Event, State] = MappingProxyType(
    {
        E.START: S.STARTING,
        E.OPENED: S.STREAMING,
        E.STOP: S.STOPPING,
        E.END: S.FINISHING,
        E.PARK: S.FINISHING_PARKED,
        E.RECLAIM: S.CLOSING,
        E.DONE: S.CLOSING,
        E.CLOSED: S.IDLE,
        E.SHUTDOWN: S.CLOSED,
    }
)

#: From ``start`` until the turn's end is stored and "ready" told: a tab told "ready" may send the next turn at once.
RUNNING = frozenset({S.STARTING, S.STREAMING, S.STOPPING, S.FINISHING, S.FINISHING_PARKED})

#: The only events every tab hears of, as the turn state its page follows (``#chat[data-state]``).
TELLS: Mapping[Event, Literal["busy", "ready"]] = MappingProxyType({E.START: "busy", E.DONE: "ready"})


class IllegalTransition(RuntimeError):
    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"{event.value!r} is not allowed in {state.value!r}")
        self.state = state
        self.event = event


def allows(state: State, event: Event) -> bool:
    return event in TRANSITIONS[state]


def step(state: State, event: Event, *, strict: bool = True) -> State:
    """The state after ``event``; an event ``state`` does not allow raises when ``strict``, else leads to its
    :data:`FALLBACK` (the caller logs it)."""
    following = TRANSITIONS[state].get(event)
    if following is not None:
        return following
    if strict:
        raise IllegalTransition(state, event)
    return FALLBACK[event]
