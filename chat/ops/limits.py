"""Every time limit of a turn, in one place: the engine, the claim, the page and the reaper read them here."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

#: Missed heartbeats after which a turn's owner is considered dead.
MISSED_BEATS = 3
#: Seconds a turn task may run beyond its queue wait and upstream turn (storing, closing) before it is cut.
FINISH_MARGIN = 15.0


@dataclass(frozen=True, slots=True)
class TurnLimits:
    #: Seconds a turn may wait for a free upstream socket while the line does not move.
    queue: float
    #: Seconds a turn may wait in line at all (a longer line is refused at the door).
    line: float
    #: Seconds a turn may take upstream, send to ``response_complete``.
    upstream: float
    #: Seconds between the owner's heartbeats.
    heartbeat: float

    @property
    def busy(self) -> float:
        """A busy flag older than this is stale whatever its heartbeat says: no live turn takes longer. Its task is
        cut at :attr:`task` and then stores its end (retrying a busy database), so one margin more: shorter, a turn
        still running or storing would have had another started beside it."""
        return self.task + FINISH_MARGIN

    @property
    def wait(self) -> float:
        """The longest a turn waits in line: bounded by the line's limit, or by the no-progress timeout without one."""
        return self.line if self.line > 0 else self.queue

    @property
    def task(self) -> float:
        """The whole turn task: waiting, upstream, and storing what came."""
        return self.wait + self.upstream + FINISH_MARGIN

    @property
    def lapse(self) -> float:
        """Seconds without a heartbeat after which a busy flag is stale (its process died)."""
        return self.heartbeat * MISSED_BEATS


def limits() -> TurnLimits:
    """The limits now in force (settings may change under tests, so they are read on each call; it is cheap)."""
    return TurnLimits(
        queue=settings.VIZOCHOK_QUEUE_TIMEOUT,
        line=settings.VIZOCHOK_LINE_MAX_WAIT,
        upstream=settings.VIZOCHOK_TURN_TIMEOUT,
        heartbeat=max(0.05, float(settings.VIZOCHOK_HEARTBEAT_SECONDS)),
    )
