"""A websockets logger that never writes frame contents."""

from __future__ import annotations

import logging


class QuietFrames(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every frame's text at DEBUG, and the first frame carries the API key. Dropping its DEBUG
    output keeps the token out of logs even when someone turns debug logging on; INFO and above still pass."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def quiet_websockets_logger(name: str) -> QuietFrames:
    return QuietFrames(logging.getLogger(name), {})
