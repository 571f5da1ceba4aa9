"""This process, as other processes see it: the owner of the turns it runs and the origin of what it publishes."""

from __future__ import annotations

import os
import socket
import uuid

#: Distinct from every other process, and from an earlier process with the same pid.
PROCESS_ID = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_token(seq: int) -> str:
    """The owner of the turn started by the user message ``seq`` in this process."""
    return f"{PROCESS_ID}#{seq}"[:100]
