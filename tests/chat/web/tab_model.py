"""A browser tab without a browser: the page's DOM, htmx's out-of-band swaps and the page's position rules.

Zulip's ``verify_action`` idea for the relay: what a tab builds from the frames it was sent must equal what a fresh
page render shows. This module is the tab's side of that comparison, small enough to read next to the scripts it
follows (``static/chat/feed.js`` and ``static/chat/positions.js``) and to htmx 2's ``oobSwap``:

* ``hx-swap-oob="true"``: the element replaces the element with its id (none there: ``htmx:oobErrorNoTarget``);
* ``hx-swap-oob="beforeend:#sel"`` or ``"beforeend"``: the element's children are appended to the target;
* before each swap, :func:`guard` decides as ``positions.guard`` does (a streamed piece keeps only what the tab
  lacks; one that leaves a gap is dropped and a catch-up is asked for);
* after the frame, :meth:`Tab.received` does what ``feed.received`` does with the inserted nodes that matter for
  the log: one element per id, a final reply takes its bubble's place, "ready" removes a stale streaming bubble.

The parser is the standard library's ``html.parser`` (no lxml or html5lib is installed); the templates close their
elements, so a plain open/close stack is enough. Anything this model does not know raises, rather than diverging
from the page silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
#: Attributes that say how a node travelled or when it was rendered, not what the log shows.
VOLATILE = frozenset({"hx-swap-oob", "data-replaces"})


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)
    parent: Element | None = None

    # --- queries ---------------------------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        return self.attrs.get(name)

    def has(self, name: str) -> bool:
        return name in self.attrs

    @property
    def id(self) -> str:
        return self.attrs.get("id") or ""

    def elements(self) -> list[Element]:
        return [child for child in self.children if isinstance(child, Element)]

    def iter(self) -> list[Element]:
        """This element and its descendants, in document order (one walk with a stack: the recursive one copied
        every subtree's list into its parent's: a tenth of the stateful test's CPU)."""
        found: list[Element] = []
        stack: list[Element] = [self]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(child for child in reversed(node.children) if isinstance(child, Element))
        return found

    def by_id(self, wanted: str) -> list[Element]:
        return [node for node in self.iter() if node.id == wanted]

    def select(self, predicate: object) -> list[Element]:
        assert callable(predicate)
        return [node for node in self.iter() if predicate(node)]

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def contains(self, other: Element) -> bool:
        node: Element | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    # --- changes ---------------------------------------------------------------------------------------------

    def detach(self) -> None:
        if self.parent is not None:
            self.parent.children = [child for child in self.parent.children if child is not self]
            self.parent = None

    def append(self, node: Element | str) -> None:
        if isinstance(node, Element):
            node.detach()
            node.parent = self
        self.children.append(node)

    def replace_with(self, node: Element) -> None:
        """``Element.replaceWith``: ``node`` (moved from wherever it is) takes this element's place."""
        assert self.parent is not None
        if node is self:
            return
        node.detach()
        parent = self.parent
        index = next(n for n, child in enumerate(parent.children) if child is self)
        parent.children[index] = node
        node.parent = parent
        self.parent = None

    def set_text(self, text: str) -> None:
        for child in self.elements():
            child.parent = None
        self.children = [text] if text else []


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#fragment")
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Element(tag, dict(attrs))
        self._open[-1].append(node)
        if tag not in VOID:
            self._open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open[-1].append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return
        raise ValueError(f"</{tag}> closes nothing")

    def handle_data(self, data: str) -> None:
        self._open[-1].append(data)


def parse(html: str) -> Element:
    """A fragment (or a whole page) as a tree under a ``#fragment`` root."""
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def canonical(node: Element | str) -> str:
    """A node as text that ignores what a page and a frame may differ in without the shopper seeing it: attribute
    order, the attributes in :data:`VOLATILE`, and runs of whitespace."""
    if isinstance(node, str):
        return re.sub(r"\s+", " ", node)
    attrs = " ".join(
        f"{name}={value!r}" if value is not None else name
        for name, value in sorted(node.attrs.items())
        if name not in VOLATILE
    )
    inner = "".join(canonical(child) for child in node.children)
    return f"<{node.tag} {attrs}>{re.sub(r' +', ' ', inner)}</{node.tag}>"


def log_items(log: Element) -> list[str]:
    """The items of a ``#chat-log`` as the shopper sees them, canonical.

    Left out: the page's own welcome and starters (not items), and refusals, which are shown to the tab that caused
    them only and are stored nowhere (``rendering.transient_error``).
    """
    items = []
    for child in log.elements():
        classes = (child.get("class") or "").split()
        if "welcome" in classes or "starters" in classes or child.get("data-item") == "refusal":
            continue
        items.append(canonical(child).strip())
    return items


def _chars(text: str) -> int:
    return len(text)  # code points, as the server and positions.js (Array.from) count


class Tab:
    """The DOM of one tab, fed with the frames its socket received."""

    def __init__(self, page_html: str) -> None:
        self.document = parse(page_html)
        chat = self.one("chat")
        self.last_seq = int(chat.get("data-last-seq") or 0)
        #: A catch-up is on its way (positions.js ``syncing``); it ends with the turn state.
        self.syncing = False
        #: Catch-ups this tab asked for because a streamed piece would have left a gap (none was on its way).
        self.gaps = 0
        self.frames = 0

    def one(self, element_id: str) -> Element:
        found = self.document.by_id(element_id)
        assert len(found) == 1, f"{len(found)} elements #{element_id}"
        return found[0]

    @property
    def log(self) -> Element:
        return self.one("chat-log")

    @property
    def state(self) -> str:
        return self.one("turn-state").get("data-state") or ""

    def streaming(self) -> Element | None:
        for node in self.log.iter():
            if node.get("data-item") == "streaming":
                return node
        return None

    def by_id_live(self, suffix: str) -> list[Element]:
        """Streaming bubbles whose id ends with ``suffix`` (``live-<turn>-<block>``)."""
        return self.log.select(lambda node: node.get("data-item") == "streaming" and node.id.endswith(suffix))

    def sync_frame(self) -> dict[str, object]:
        """What ``positions.syncFrame`` sends: the last stored item, and the live bubble with its length."""
        self.syncing = True
        frame: dict[str, object] = {"kind": "sync", "after": self.last_seq}
        live = self.streaming()
        if live is not None and live.id:
            frame["bubble"] = live.id
            frame["offset"] = int(live.get("data-length") or 0)
        return frame

    # --- one frame -------------------------------------------------------------------------------------------

    def apply(self, html: str) -> bool:
        """Swap one frame in; True when the tab must ask for a catch-up (a streamed piece left a gap)."""
        self.frames += 1
        fragment = parse(html)
        inserted: list[Element] = []
        gap = False
        for oob in [node for node in fragment.iter() if node.has("hx-swap-oob")]:
            if oob.parent is not fragment:
                raise AssertionError(f"a nested out-of-band element is not modelled: {canonical(oob)[:200]}")
            value = oob.attrs.pop("hx-swap-oob") or "true"
            style, _, selector = value.partition(":")
            if style == "true":
                style = "outerHTML"
            targets = self._targets(selector, oob)
            if not targets:
                if oob.get("data-fallback") == "bubble":
                    gap = True  # htmx:oobErrorNoTarget of a streamed piece: feed.js asks for a catch-up
                continue
            if len(targets) != 1:
                raise AssertionError(f"{len(targets)} targets for {value!r}")
            target = targets[0]
            if style == "outerHTML":
                swap, piece = guard(self, oob, inline=True)
                if not piece:
                    gap = True
                if swap:
                    target.replace_with(oob)
                    inserted.append(oob)
            elif style == "beforeend":
                swap, piece = guard(self, oob, inline=False)
                if not piece:
                    gap = True
                if swap:
                    children = list(oob.children)
                    inserted += [child for child in children if isinstance(child, Element)]
                    for child in children:
                        target.append(child)
            else:
                raise AssertionError(f"swap style {style!r} is not modelled")
        self.received(inserted)
        if gap and not self.syncing:
            self.gaps += 1
            return True
        return False

    def _targets(self, selector: str, oob: Element) -> list[Element]:
        if not selector:
            return self.document.by_id(oob.id) if oob.id else []
        if not re.fullmatch(r"#[\w-]+", selector):
            raise AssertionError(f"selector {selector!r} is not modelled")
        return self.document.by_id(selector[1:])

    def received(self, nodes: list[Element]) -> None:
        """``feed.received``: what the page does with the nodes one frame inserted (the log's part of it)."""
        for node in nodes:
            if not self.document.contains(node):
                continue
            self._place(node)
            seq = int(node.get("data-seq") or 0)
            if seq > self.last_seq:
                self.last_seq = seq
            if node.get("data-item") == "turn-state":
                self.syncing = False
                if node.get("data-state") == "ready":
                    for stale in self.log.select(lambda n: n.get("data-item") == "streaming"):
                        stale.detach()

    def _place(self, node: Element) -> None:
        replaces = node.get("data-replaces")
        if replaces:
            live = self.document.by_id(replaces)
            if live:
                live[0].replace_with(node)
        if node.id and (node.has("data-seq") or node.get("data-item") == "streaming"):
            for twin in self.document.by_id(node.id):
                if twin is not node:
                    twin.replace_with(node)
        self._in_order(node)

    def _in_order(self, node: Element) -> None:
        """``feed.inOrder``: stored items stay in seq order, before the bubble being streamed."""
        seq = int(node.get("data-seq") or 0)
        log = self.log
        if not seq or node.parent is not log:
            return
        items = log.elements()
        at = items.index(node)
        following = [
            other
            for other in items
            if other is not node and (int(other.get("data-seq") or 0) > seq or other.get("data-item") == "streaming")
        ]
        if following and items.index(following[0]) < at:
            node.detach()
            log.children.insert(log.children.index(following[0]), node)
            node.parent = log
        elif not following and any(int(other.get("data-seq") or 0) for other in items[at + 1 :]):
            log.append(node)


def guard(tab: Tab, oob: Element, *, inline: bool) -> tuple[bool, bool]:
    """``positions.guard`` for one out-of-band element: (swap it?, True unless it was held back for a gap)."""
    piece = oob
    first = next((node for node in piece.iter()[1:] if node.get("data-item") == "streaming"), None)
    if first is not None:
        # The first piece of a bubble this tab already has (from a catch-up): the one it has is as long or longer.
        return not tab.document.by_id(first.id), True
    bubble_id = piece.get("data-bubble") or ""
    found = tab.document.by_id(bubble_id) if bubble_id else []
    if not found:
        return True, True  # no target: the swap reports it (oobErrorNoTarget) and the caller catches up
    bubble = found[0]
    have = int(bubble.get("data-length") or 0)
    length = piece.get("data-length")
    if length is not None:
        if int(length) < have:
            return False, True
        bubble.attrs["data-length"] = length
        return True, True
    offset = piece.get("data-offset")
    if offset is None:
        return True, True
    start = int(offset)
    text = piece.text()
    if start > have:
        return False, False
    if start + _chars(text) <= have:
        return False, True
    if start < have:
        piece.set_text(text[have - start :])
    bubble.attrs["data-length"] = str(start + _chars(text))
    return True, True
