"""Numbers a client sends (query parameters, browser frames): read one way everywhere.

``str.isdigit`` and ``int`` both accept more than ASCII digits: ``"²"`` passes ``isdigit`` and fails ``int`` (an
HTTP 500 on "Show more"), and ``int`` reads ``"١٢"``, ``" 12 "`` and ``"1_2"`` as 12. A client's number is ASCII
digits only, of bounded length, or it is no number.
"""

from __future__ import annotations

import re
from typing import Any

_NATURAL = re.compile(r"[0-9]{1,9}")


def natural(value: Any) -> int | None:
    """A non-negative integer of at most 9 digits from a request or a frame (a JSON int, a string, the first of an
    htmx list), else None."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= 999_999_999 else None
    if isinstance(value, str) and _NATURAL.fullmatch(value):
        return int(value)
    return None
