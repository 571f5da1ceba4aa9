from __future__ import annotations

import pytest

from chat.presentation.images import safe_image_url


@pytest.mark.parametrize(
    "url",
    ["https://cdn.example/a.png", "http://cdn.example/a.png?x=1", "/static/chat/sandbox/products/milk-001.svg"],
)
def test_allowed(url: str) -> None:
    assert safe_image_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:image/svg+xml;base64,AAAA",
        "//evil.example/a.png",
        "/\\evil.example/a.png",
        "https:/\\evil.example",
        "http://",
        "ftp://example.com/a.png",
        "vbscript:x",
        "https://a\nb.example/x.png",
        "https://example.com/" + "a" * 3000,
        None,
        42,
        "",
    ],
)
def test_refused(url: object) -> None:
    assert safe_image_url(url) == ""
