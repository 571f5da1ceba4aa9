"""At process start: every patch module imported and its fence asked once, so what is off, and why, is logged then
(an unknown library version warns here, not at the first socket that would have used the patch)."""

from __future__ import annotations

import logging

from chat.compat import (
    channels_dispatch,
    channels_layer,
    daphne_access,
    daphne_buffer,
    twisted_tcp,
    websockets_frames,
)
from chat.compat.fences import FENCES

logger = logging.getLogger("chat.compat")

PATCHES = (channels_dispatch, channels_layer, daphne_access, daphne_buffer, twisted_tcp, websockets_frames)


def check_all() -> dict[str, bool]:
    """Each fence's name and whether its patch applies in this process."""
    active = {name: fence.active() for name, fence in sorted(FENCES.items())}
    off = [FENCES[name].switch for name, on in active.items() if not on]
    if off:
        logger.info("library patches off: %s", ", ".join(off))
    return active
