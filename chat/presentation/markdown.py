"""Assistant markdown -> HTML that is safe to put on a page.

Assistant replies are written by a remote model and may echo anything a shopper (or a product feed) fed it, so
the markdown source is untrusted. Two layers keep it inert:

1. markdown-it-py parses CommonMark with raw HTML switched *off*, so ``<script>`` in the source comes out as
   escaped text, and its link validator already refuses ``javascript:``/``vbscript:``/``data:`` targets.
2. nh3 (ammonia) then re-parses the output against a small allowlist of tags and attributes. This is the layer
   we trust: if a markdown-it plugin or a future option ever emits something unexpected, the allowlist still
   drops it. Links are limited to http, https and mailto, open in a new tab and carry
   ``rel="noopener noreferrer nofollow"``. Images are never rendered (a remote image is a tracking pixel and
   an untrusted URL in ``src``); their alt text is kept as plain text.

The chat relay and the admin transcript both use :func:`render_markdown`, so a reply looks the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.token import Token

#: Replies longer than this are cut before parsing; nothing the assistant says legitimately comes close, and a
#: bound keeps a hostile multi-megabyte frame from pinning a worker.
MAX_SOURCE_CHARS = 100_000

ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "p", "br", "hr", "strong", "em", "s", "del", "code", "pre", "blockquote",
        "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "ol": {"start"},
}
ALLOWED_URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"


def _render_image_as_text(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """Images become their alt text: no remote fetch, no untrusted ``src``, but the words survive."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    return escape(alt)


def _is_allowed_link(url: str) -> bool:
    """Only absolute http(s) and mailto targets become links; anything else stays visible as literal markdown.

    Refusing here (rather than only in nh3) means a refused link shows its source text instead of an ``<a>``
    with no ``href``, so a reader can see what the assistant tried to link to.
    """
    scheme, sep, rest = url.strip().partition(":")
    if not sep or scheme.lower() not in ALLOWED_URL_SCHEMES:
        return False
    return scheme.lower() == "mailto" or rest.startswith("//")


def _build_parser() -> MarkdownIt:
    """CommonMark without raw HTML, plus the two GFM bits assistants use for shopping lists (tables, ~~old~~)."""
    parser = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    parser.enable(["table", "strikethrough"])
    parser.validateLink = _is_allowed_link  # type: ignore[method-assign]
    parser.add_render_rule("image", _render_image_as_text)
    return parser


def _build_cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        # Relative links would resolve against whichever page shows the reply (the admin, a host shop):
        # there is no single meaning for them, so they are dropped rather than guessed.
        url_relative="deny",
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


_PARSER = _build_parser()
_PARSER_WITHOUT_TABLES = _build_parser().disable("table")
_CLEANER = _build_cleaner()

#: Table cells one reply may make. The parser pads every row to its header's width, so a 1000-column header over
#: rows of a lone "|" made 65,536 cells a table, 9.9 MB from 63 KB; a reply's real tables (a shopping list, a
#: comparison) hold dozens. Past this the tables are shown as the text they are.
MAX_TABLE_CELLS = 2_000
_DELIMITER_CHARACTERS = frozenset("|-: \t")


def _table_cells(source: str) -> int:
    """The most cells the tables in ``source`` can make: each delimiter row's columns times the rows that may
    follow it (up to the next blank line). Linear, without a regular expression a hostile line could stall."""
    cells = 0
    columns = 0
    for line in source.split("\n"):
        stripped = line.strip().lstrip("> \t")  # a table in a quote is a table too
        if not stripped:
            columns = 0
        elif "|" in stripped and "-" in stripped and set(stripped) <= _DELIMITER_CHARACTERS:
            columns = sum(1 for cell in stripped.strip("|").split("|") if "-" in cell)
            cells += 2 * columns  # the header row and this one
        else:
            cells += columns
    return cells


#: One line of words and the punctuation that means nothing to markdown (no ``*_`[]<>&#|~\\``, no line break, no
#: list or heading marker: it starts with a letter). For such text the parser and the sanitiser give exactly
#: ``<p>text</p>`` (tests/chat/presentation/test_markdown.py checks that on generated text), so it is built directly:
#: a plain reply is the common case, and parsing it cost more than the rest of showing it.
_INERT = r"[ .,;:?!'\"@%/()$€₴№’—–-]"  # punctuation that is never markup within a line that starts with a letter
_PLAIN = re.compile(rf"[^\W\d_][^\W_]*(?:{_INERT}+[^\W_]+)*{_INERT}*")


def render_markdown(text: str) -> SafeString:
    """Render untrusted markdown to sanitised HTML, marked safe for templates.

    Marking the result safe is sound only because nh3 has just re-serialised it against the allowlist above;
    never mark upstream text safe any other way.
    """
    if not text:
        return mark_safe("")
    source = str(text)[:MAX_SOURCE_CHARS]
    plain = source.rstrip(" ")
    if _PLAIN.fullmatch(plain):
        return mark_safe(f"<p>{plain}</p>")  # nothing in it is markup: see _PLAIN
    tables_fit = "|" not in source or _table_cells(source) <= MAX_TABLE_CELLS  # no pipe, no table: no count
    parser = _PARSER if tables_fit else _PARSER_WITHOUT_TABLES
    html = parser.render(source)
    return mark_safe(_CLEANER.clean(html).strip())  # sanitised by nh3 on this very line


#: A last line that is only a block's marker ("4.", "-", "##"): an item or heading the reply began but never wrote.
_DANGLING_MARKER = re.compile(r"(?:^|\n)[ \t]*(?:\d{1,9}[.)]|[-*+]|#{1,6})[ \t]*\Z")


def render_cut_markdown(text: str) -> SafeString:
    """A reply that ended early (stopped, or cut off), without the item or heading it had only begun: a list stopped
    right after "4." ends at item 3, not with an empty item 4 (issue 22)."""
    return render_markdown(_DANGLING_MARKER.sub("", str(text or "").rstrip()))
