"""The markdown sanitiser: ordinary markdown renders, anything executable comes out inert."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.utils.safestring import SafeString
from hypothesis import given, settings
from hypothesis.strategies import text

from chat.presentation.markdown import render_markdown

LINK_ATTRS = 'target="_blank" rel="noopener noreferrer nofollow"'


def test_bold_italic_and_lists_render() -> None:
    html = render_markdown("**Молоко** і *хліб*\n\n- яйця\n- сир\n\n1. one\n2. two")
    assert "<strong>Молоко</strong>" in html
    assert "<em>хліб</em>" in html
    assert "<ul>" in html
    assert "<li>яйця</li>" in html
    assert "<ol>" in html


def test_result_is_marked_safe_for_templates() -> None:
    assert isinstance(render_markdown("hi"), SafeString)
    assert render_markdown("") == ""


def test_http_link_opens_in_new_tab_without_referrer() -> None:
    html = render_markdown("[shop](https://example.com/a?b=1&c=2)")
    assert f'<a href="https://example.com/a?b=1&amp;c=2" {LINK_ATTRS}>shop</a>' in html


def test_mailto_link_is_allowed() -> None:
    assert 'href="mailto:help@example.com"' in render_markdown("[mail](mailto:help@example.com)")


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
        "[x](/relative/path)",
        "[x](//evil.example/path)",
    ],
)
def test_non_http_links_are_not_links(source: str) -> None:
    html = render_markdown(source)
    assert "<a" not in html
    assert "href" not in html


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        '<div onclick="alert(1)">x</div>',
        "<style>body{display:none}</style>",
    ],
)
def test_raw_html_is_escaped_text(source: str) -> None:
    html = render_markdown(source)
    assert not re.search(r"<(script|img|iframe|div|style)\b", html)
    assert "&lt;" in html


class _AttributeNames(HTMLParser):
    """Every (tag, attribute) pair a browser would see, so quoted look-alikes inside values do not count."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.extend((tag, name) for name, _ in attrs)


def test_no_event_handler_attribute_survives() -> None:
    html = render_markdown('[x](https://e.com "t\\" onerror=\\"alert(1)") <b onmouseover=alert(1)>hi</b>')
    parser = _AttributeNames()
    parser.feed(html)
    assert parser.seen
    assert all(not name.startswith("on") for _, name in parser.seen)
    assert {name for _, name in parser.seen} <= {"href", "title", "target", "rel"}


def test_images_render_as_their_alt_text() -> None:
    html = render_markdown("![Молоко <b>2.5%</b>](https://cdn.example/milk.png) ![x](javascript:alert(1))")
    assert "<img" not in html
    assert "src=" not in html
    assert "Молоко" in html
    assert "<b>" not in html


def test_code_is_escaped() -> None:
    html = render_markdown("```html\n<script>alert(1)</script>\n```\n\n`<b>`")
    assert "<pre><code>&lt;script&gt;" in html
    assert "<code>&lt;b&gt;</code>" in html
    assert "class=" not in html


def test_tables_and_strikethrough_render() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~42 ₴~~ 39 ₴")
    assert "<table>" in html
    assert "<td>1</td>" in html
    assert "<s>42 ₴</s>" in html


def test_single_newline_is_a_line_break() -> None:
    assert "<br>" in render_markdown("first\nsecond")


def test_huge_input_is_bounded() -> None:
    html = render_markdown("a" * 500_000)
    assert len(html) < 200_000


def _table(columns: int, rows: int) -> str:
    return "|" + "a|" * columns + "\n|" + "-|" * columns + "\n" + "|\n" * rows + "\n"


def test_a_table_cannot_multiply_its_source() -> None:
    """The parser pads every row to the header's width: 63 KB of 1000-column tables with empty rows rendered to
    9.9 MB of cells in 13 s on the event loop. Tables past a cell budget are shown as the text they are."""
    source = _table(1000, 66) * 15
    html = render_markdown(source)
    assert len(html) < 4 * len(source), len(html)
    assert "<table>" not in html and "|a|a|" in html


def test_a_table_in_a_quote_counts_too() -> None:
    source = "".join("> " + line + "\n" for line in (_table(1000, 60) * 2).splitlines())
    html = render_markdown(source)
    assert len(html) < 4 * len(source), len(html)


def test_tables_within_the_budget_still_render() -> None:
    html = render_markdown(_table(8, 40) + "|x|y|\n|--|--|\n|1|2|\n")
    assert html.count("<table>") == 2 and html.count("<td>") == 8 * 40 + 2


_PLAIN_ALPHABET = "abcXYZмолокоЇєґ0123456789 .,;:?!'\"@%/()$€₴№’—–-*_#>|~&<\n\t\u00a0`[]\\"


@settings(max_examples=600, deadline=None)
@given(text(alphabet=_PLAIN_ALPHABET, max_size=60))
def test_a_plain_line_renders_as_the_parser_would(source: str) -> None:
    """The shortcut for a line with nothing markdown reads (``_PLAIN``) gives byte for byte what parsing gives."""
    from chat.presentation.markdown import _CLEANER, _PARSER

    parsed = _CLEANER.clean(_PARSER.render(source)).strip() if source else ""
    assert render_markdown(source) == parsed


@pytest.mark.parametrize(
    "source",
    ["Так, молоко є. Щось ще?", "Milk 2.5% — 42,90 ₴ (1 l)", "milk0@1795000000000000 bread1@1795000000000001 "],
)
def test_plain_replies_take_the_shortcut(source: str) -> None:
    from chat.presentation.markdown import _PLAIN

    assert _PLAIN.fullmatch(source.rstrip(" "))
    assert render_markdown(source) == f"<p>{source.rstrip(' ')}</p>"


def test_the_shortcut_check_is_linear_on_hostile_text() -> None:
    """A long run the pattern almost matches must not backtrack (it runs on every stored reply)."""
    import time

    started = time.perf_counter()
    render_markdown("a -" * 30_000 + "*")
    assert time.perf_counter() - started < 5  # seconds: a backtracking pattern would take hours, linear takes ms
