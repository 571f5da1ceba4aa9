from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils import timezone
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString

from chat.ops import staticfiles
from chat.presentation import formatting, hooks, texts
from chat.presentation.images import safe_image_url
from chat.presentation.markdown import render_cut_markdown, render_markdown
from chat.vizochok.messages import to_json

register = template.Library()


class _Constant(template.Node):
    """What a ``{% hook %}`` writes: known when the template is compiled, the same at every render."""

    def __init__(self, text: SafeString) -> None:
        self.text = text

    def render(self, context: template.Context) -> SafeString:
        return self.text


def _hook_tag(token: template.base.Token, write: Callable[[str], SafeString]) -> _Constant:
    """A hook tag's node: ``write`` given the quoted hook name; an undeclared one is a syntax error."""
    bits = token.split_contents()
    if len(bits) != 2 or len(bits[1]) < 3 or bits[1][0] not in "'\"" or bits[1][0] != bits[1][-1]:
        raise template.TemplateSyntaxError(f'{bits[0]} takes one quoted hook name, as in {{% {bits[0]} "ID.log" %}}')
    try:
        return _Constant(write(bits[1][1:-1]))
    except hooks.UnknownHook as exc:
        raise template.TemplateSyntaxError(str(exc)) from None


@register.tag
def hook(parser: template.base.Parser, token: template.base.Token) -> _Constant:
    """``{% hook "ITEM.user" %}`` writes ``data-item="user"``, ``{% hook "ID.log" %}`` writes ``id="chat-log"``: the
    page's ids, item kinds and button actions as static/chat/hooks.js declares them (chat.presentation.hooks). An
    undeclared name fails the template's compilation, which tests/chat/test_hooks.py does for every template."""
    return _hook_tag(token, lambda name: format_html('{}="{}"', *hooks.attribute(name)))


@register.tag
def hook_value(parser: template.base.Parser, token: template.base.Token) -> _Constant:
    """``{% hook_value "ID.cartPanel" %}`` writes ``cart-panel``: a declared id where another attribute refers to it
    (``aria-controls``, ``for``, an htmx target)."""
    return _hook_tag(token, lambda name: conditional_escape(hooks.value(name)))


@register.filter
def money(value: Any) -> str:
    return formatting.money(value)


@register.filter
def qty(value: Any, unit: str | None = "pcs") -> str:
    return formatting.quantity(value, unit)


@register.filter
def num(value: Any) -> str:
    return formatting.number(value)


@register.filter
def editable_number(value: Any) -> str:
    return formatting.editable_number(value)


@register.filter
def unit_label(value: str | None) -> str:
    return formatting.unit_label(value)


@register.filter
def per_unit(value: str | None) -> str:
    return formatting.per_unit(value)


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value


# Every message shows its time, and Django's ``date``/``time`` filters (format-string parsing, localisation) cost
# more than the rest of a message's markup: these two give the same text for the two formats it uses.
@register.filter
def iso_time(value: Any) -> str:
    """``value|date:"c"``: ISO 8601 in the current time zone (for ``<time datetime>``)."""
    return _local(value).isoformat() if isinstance(value, datetime) else ""


@register.filter
def clock(value: Any) -> str:
    """``value|time:"H:i"``: hours and minutes in the current time zone."""
    if not isinstance(value, datetime):
        return ""
    local = _local(value)
    return f"{local.hour:02d}:{local.minute:02d}"


@register.filter
def image_src(value: Any) -> str:
    """An image URL that may reach ``src``: http(s) or same-origin, else empty (the placeholder shows)."""
    return safe_image_url(value)


@register.filter
def markdown(value: str) -> str:
    return render_markdown(value or "")


@register.filter
def reply_markdown(message: Any) -> str:
    """A stored reply's text as HTML; one that ended early drops the list item or heading it had only begun."""
    text = getattr(message, "text", "") or ""
    data = getattr(message, "data", {}) or {}
    if data.get("stopped") or not getattr(message, "complete", True):
        return render_cut_markdown(text)
    return render_markdown(text)


@register.filter
def machine(value: Any) -> str:
    """A number for data attributes and inputs: always a dot, never grouping."""
    number = formatting.to_decimal(value)
    return "" if number is None else format(number.normalize(), "f")


@register.filter
def status_text(code: str) -> str:
    return texts.status_text(code)


@register.filter
def error_text(code: str) -> str:
    return texts.error_text(code)


@register.simple_tag
def refusal_text(code: str, details: Any) -> str:
    """A refusal's text, with what was allowed when the relay knows it (a quantity's range)."""
    return texts.refusal_text(code, details if isinstance(details, dict) else {})


@register.filter
def retry_text(seconds: Any) -> str:
    return texts.retry_text(float(seconds))


@register.filter
def cart_action_text(action: str) -> str:
    return texts.cart_action_text(action)


@register.filter
def stepper(product: Any) -> dict[str, str]:
    """A product's stepper bounds as machine numbers: weighed goods step 0.1, pieces step 1."""
    step, minimum = formatting.stepper_bounds(product)
    return {"step": machine(step), "min": machine(minimum), "max": machine(settings.VIZOCHOK_MAX_QUANTITY)}


@register.filter
def cart_count(items: Any) -> str:
    return str(formatting.cart_lines(items))


@register.filter
def line_total(item: Any) -> str:
    return formatting.money(formatting.line_total(item))


@register.filter
def changed_quantity(change: Any) -> str:
    return formatting.changed_quantity(change)


@register.filter
def cart_note_verb(action: str) -> str:
    return texts.cart_note_verb(action)


@register.filter
def cart_run_text(note: Any) -> str:
    """A turn's cart changes in words when they were more than one ("Added 10 items"); "" for a single change."""
    return texts.cart_run_text(note if isinstance(note, dict) else {})


@register.filter
def cart_json(items: Any, total: Any) -> str:
    """The cart as JSON for ``data-cart``; host pages receive it in ``vizochok:cart_changed``."""
    return to_json({"items": items or [], "total": formatting.to_decimal(total) or 0})


@register.filter
def product_name(product: Any) -> str:
    return formatting.display_name(product)


@register.simple_tag
def card_page(data: Any, message: Any) -> Any:
    """The first page of a card message's cards (chat.presentation.rendering.card_page)."""
    from chat.presentation.rendering import card_page as page

    return page(data if isinstance(data, dict) else {}, getattr(message, "seq", 0))


@register.simple_tag
def page_script(entry: str) -> SafeString:
    """The page's module script and, when it is not one bundled file, a ``<link rel=modulepreload>`` for every
    module it imports (``chat.ops.staticfiles.page_script``): the browser fetches the whole graph at once."""
    script, preloads = staticfiles.page_script(entry)
    tag = format_html('<script type="module" src="{}"></script>', static(script))
    links = format_html_join("", '\n  <link rel="modulepreload" href="{}">', ((static(path),) for path in preloads))
    return tag + links
