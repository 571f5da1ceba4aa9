"""Which image URLs may reach an ``src`` attribute. Product data is untrusted (reference §9)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

_MAX_URL = 2048


def safe_image_url(value: Any) -> str:
    """``value`` if it is an absolute http(s) URL or a same-origin path, else an empty string.

    Rejects ``javascript:``, ``data:``, protocol-relative ``//host`` (another origin in disguise), backslash
    tricks browsers normalise to ``//``, control characters and absurd lengths.
    """
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if not url or len(url) > _MAX_URL or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        return ""
    if url.startswith("/"):
        return "" if url.startswith("//") else url
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url
    return ""
