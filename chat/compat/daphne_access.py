"""Daphne: its access log is written by the relay's writer (stdlib logging for JSON, and entry tokens redacted).

Daphne's CLI builds its ``AccessLogGenerator`` (NCSA lines on stdout) after importing the application and offers no
hook for another writer, so its one writing method, ``write_entry``, is replaced. A public class, but not a
documented extension point: the method's signature is Daphne's own business.

Off (``VIZOCHOK_COMPAT_DAPHNE_ACCESS_LOG=0``) or under another Daphne: Daphne writes its own lines, entry tokens
(``/?token=…``, a host's signed entry) included; the process says so at start (the fence's warning, or the list of
patches switched off), so an operator who turns it off knows what the access log then holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat.compat.fences import fence

FENCE = fence(
    "DAPHNE_ACCESS_LOG",
    {"daphne": {"4.2.3"}},
    "Daphne's access log written through the relay's logging, entry tokens redacted",
)

#: ``write_entry(self, host, date, request, status=None, length=None, ident=None, user=None)``, Daphne's signature.
Writer = Callable[..., None]


def install(make_writer: Callable[[Writer], Writer]) -> bool:
    """Replace Daphne's access-log writer with ``make_writer(daphne's own writer)``; False where the fence is down."""
    if not FENCE.active():
        return False
    from daphne.access import AccessLogGenerator

    own: Any = getattr(AccessLogGenerator, "_vizochok_own_write_entry", AccessLogGenerator.write_entry)
    AccessLogGenerator._vizochok_own_write_entry = own  # installed once per process: the original kept
    AccessLogGenerator.write_entry = make_writer(own)
    return True


def uninstall() -> None:
    """Daphne's own writer again (tests)."""
    from daphne.access import AccessLogGenerator

    own = getattr(AccessLogGenerator, "_vizochok_own_write_entry", None)
    if own is not None:
        AccessLogGenerator.write_entry = own
