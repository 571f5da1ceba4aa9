"""The streamed bubble's fragments: finished lines formatted by the sanitiser, the line being written as text, and
every piece with its position (a chunk its offset, a whole bubble its length: chat/feed/feed.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.utils import timezone

from chat.presentation import rendering


def test_the_first_fragment_formats_finished_lines_and_keeps_the_rest_plain() -> None:
    text = "**Borscht** (6 servings)\n\n1. Boil **the"
    html = rendering.text_delta("live-7-1", text, offset=0)
    assert f'id="live-7-1" data-length="{len(text)}"' in html
    assert 'id="live-7-1-done"><p><strong>Borscht</strong> (6 servings)</p></div>' in html
    assert 'id="live-7-1-tail">1. Boil **the</span>' in html  # unfinished: plain text, no half-made markup


def test_the_bubble_being_written_carries_its_time() -> None:
    """The contract's ``.msg time[datetime]`` holds for the reply still streaming, not only once it is stored."""
    html = rendering.text_delta("live-7-1", "Milk", offset=0)
    found = re.search(r'<div class="msg__meta"><time class="msg__time" datetime="([^"]+)">\d{2}:\d{2}</time>', html)
    assert found is not None, html
    assert abs(datetime.fromisoformat(found[1]) - timezone.now()) < timedelta(seconds=5)
    # Only the piece that makes the bubble has it: a tab never gets a second time from a later piece.
    assert "<time" not in rendering.text_delta("live-7-1", "Milk\nand", offset=4, whole="Milk\nand")


def test_a_bubble_a_tab_catches_up_with_shows_when_its_turn_began() -> None:
    began = timezone.now() - timedelta(minutes=3)
    html = rendering.live_bubble("live-7-1", "Milk", first=True, started=began)
    assert f'datetime="{timezone.localtime(began).isoformat()}"' in html


def test_a_chunk_without_a_line_break_is_appended_as_text_at_its_offset() -> None:
    so_far = "**Borscht**\n1. Boil the beef <b>"
    html = rendering.text_delta("live-7-1", " beef <b>", offset=len(so_far) - 9, whole=so_far)
    assert html == (
        '<span id="live-7-1-tail" hx-swap-oob="beforeend" data-fallback="bubble" data-bubble="live-7-1" '
        f'data-offset="{len(so_far) - 9}"> beef &lt;b&gt;</span>'
    )


def test_a_chunk_that_finishes_a_line_replaces_both_parts_with_the_bubble_length() -> None:
    so_far = "**Borscht**\n1. Boil the beef\n2. Add <script>alert(1)</script> [x](javascript:alert(1))\n3. Se"
    html = rendering.text_delta("live-7-1", "(1))\n3. Se", offset=len(so_far) - 10, whole=so_far)
    assert 'id="live-7-1-done" hx-swap-oob="true"' in html and f'data-length="{len(so_far)}">3. Se' in html
    assert "<li>Boil the beef</li>" in html
    assert "<script>" not in html and 'href="javascript' not in html  # the same sanitiser as a stored reply


def test_the_fast_path_is_what_the_template_renders() -> None:
    fast = rendering.text_delta("live-1-2", "a < b & c", offset=17)
    slow = rendering.fragment("text_delta", bubble="live-1-2", text="a < b & c", offset=17, first=False, whole=False)
    assert fast == slow
