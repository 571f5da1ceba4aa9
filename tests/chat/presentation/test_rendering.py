"""The streamed bubble's fragments: finished lines formatted by the sanitiser, the line being written as text."""

from __future__ import annotations

from chat.presentation import rendering


def test_the_first_fragment_formats_finished_lines_and_keeps_the_rest_plain() -> None:
    html = rendering.text_delta("live-7-1", "**Borscht** (6 servings)\n\n1. Boil **the", first=True)
    assert 'id="live-7-1-done"><p><strong>Borscht</strong> (6 servings)</p></div>' in html
    assert 'id="live-7-1-tail">1. Boil **the</span>' in html  # unfinished: plain text, no half-made markup


def test_a_chunk_without_a_line_break_is_appended_as_text() -> None:
    html = rendering.text_delta("live-7-1", " beef <b>", first=False, so_far="**Borscht**\n1. Boil the beef <b>")
    assert html == (
        '<span id="live-7-1-tail" hx-swap-oob="beforeend" data-fallback="bubble" data-bubble="live-7-1">'
        " beef &lt;b&gt;</span>\n"
    )


def test_a_chunk_that_finishes_a_line_replaces_both_parts() -> None:
    so_far = "**Borscht**\n1. Boil the beef\n2. Add <script>alert(1)</script> [x](javascript:alert(1))\n3. Se"
    html = rendering.text_delta("live-7-1", "(1))\n3. Se", first=False, so_far=so_far)
    assert 'id="live-7-1-done" hx-swap-oob="true"' in html and 'id="live-7-1-tail" hx-swap-oob="true">3. Se' in html
    assert "<li>Boil the beef</li>" in html
    assert "<script>" not in html and 'href="javascript' not in html  # the same sanitiser as a stored reply
