"""Graceful shutdown: close every upstream socket and mark the turns that were still running.

On SIGTERM (a deploy, a scale-in) running turns are cancelled; each stores what it had streamed as an incomplete
reply plus a ``relay_shutdown`` notice and frees its conversation (``ConversationRunner._finish``), so the shopper
sees why the reply stopped and another process can take the next turn at once, without waiting for a heartbeat to
lapse. Upstream sockets are closed cleanly and their slots (Redis leases) given back.

Daphne has no ASGI lifespan; it runs on Twisted, whose reactor waits for "before shutdown" triggers that return a
Deferred. Uvicorn and other servers send the ASGI ``lifespan`` scope, handled by :func:`lifespan`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

logger = logging.getLogger("chat.web.lifecycle")

#: Longest a shutdown waits for turns to be marked and sockets closed.
SHUTDOWN_BUDGET = 10.0


async def shutdown() -> None:
    from chat.turns import engine

    try:
        async with asyncio.timeout(SHUTDOWN_BUDGET):
            await engine.close()
    except TimeoutError:
        logger.error("shutdown: upstream sockets not closed within %.0f s", SHUTDOWN_BUDGET)
    except Exception:
        logger.exception("shutdown: closing the relay failed")
    else:
        logger.info("shutdown: running turns marked, upstream sockets closed")


def install_daphne_shutdown() -> bool:
    """Register :func:`shutdown` with Daphne's reactor; False when not running under Daphne."""
    if "daphne.server" not in sys.modules or "twisted.internet.reactor" not in sys.modules:
        return False
    from twisted.internet import defer, reactor

    def before_shutdown() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    # Twisted declares the method on a zope interface (no ``self``), so mypy reads the arguments shifted by one.
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[arg-type]
    return True


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI lifespan (uvicorn, hypercorn): nothing to do at startup, :func:`shutdown` at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
