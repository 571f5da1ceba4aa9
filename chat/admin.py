"""Django admin for conversations: a fast read-only list, the transcript as a chat, exports and live updates.

Admins browse chats, they never edit them: the stored conversation is the only record of what the shopper and
the assistant said (the upstream keeps no history), so every field is read-only and nobody can add one by hand.
Deleting stays possible for users holding the delete permission (privacy requests, test data).

Everything shown from a message payload is untrusted upstream data. The page never marks it safe: texts go
through template autoescaping, assistant markdown through :func:`chat.presentation.markdown.render_markdown` (nh3
allowlist), and an image URL only reaches ``src`` if it is an absolute http(s) URL or a same-origin path.

The list has to stay quick at 100,000+ conversations, so every column is a field of the conversation row
(turns and cart are denormalised on it), the search matches ids exactly (indexed) and message text through an
``EXISTS`` (no join, no ``DISTINCT``), the date hierarchy hops along the ``created_at`` index, and the
unfiltered total is never counted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Min, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from chat import exports
from chat.models import Conversation, Message
from chat.presentation import formatting
from chat.presentation.images import safe_image_url
from chat.presentation.markdown import render_markdown

#: The live endpoint hands over at most this many messages per poll; the next poll fetches the rest.
POLL_BATCH = 200
#: Seconds between polls of the live transcript.
POLL_SECONDS = 3
#: The conversation page shows at most the latest this many messages; the export has the full history.
TRANSCRIPT_LIMIT = 2000
#: Message text is searched only for terms at least this long: shorter ones match nearly every chat.
MIN_TEXT_SEARCH = 3
MAX_SEARCH_TERM = 200
#: A notice's raw frame is shown for debugging, cut to this many characters.
MAX_NOTICE_CHARS = 2000
#: Periods the date hierarchy lists at one level (years are few; months <= 12, days <= 31 within a level).
MAX_HIERARCHY_PERIODS = 60
#: Conversations named on a delete confirmation page; the rest are counted.
DELETE_PREVIEW = 100

CART_ACTIONS = {
    "item_selected": _("added"),
    "item_removed": _("removed"),
    "quantity_updated": _("quantity changed"),
    "cart_cleared": _("cleared"),
    "restored": _("restored"),
}


# --- untrusted payload helpers --------------------------------------------------------------------------------


def money(value: Any) -> str:
    return formatting.money(value)


def quantity(value: Any) -> str:
    """A quantity without trailing zeros (``2``, ``0,5``)."""
    return formatting.number(value)


def _text(value: Any) -> str:
    """Scalar payload values as text; nested structures are not shown where a label is expected."""
    if isinstance(value, bool) or value is None:
        return ""
    return str(value) if isinstance(value, str | int | float | Decimal) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- transcript view model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One message as the transcript template shows it: already validated, formatted and, for markdown, sanitised.

    Templates only branch on ``kind``/``role`` and print these values; none of them is marked safe except
    ``html``, which comes out of the nh3 sanitiser.
    """

    seq: int
    role: str
    kind: str
    created_at: datetime
    complete: bool = True
    text: str = ""
    html: SafeString | str = ""
    body: dict[str, Any] = field(default_factory=dict)


def _product(item: dict[str, Any]) -> dict[str, Any]:
    price, promo = money(item.get("price")), money(item.get("promo_price"))
    return {
        "sku": _text(item.get("sku")),
        "name": _text(item.get("name")) or _text(item.get("sku")),
        "name_en": _text(item.get("name_en")),
        "brand": _text(item.get("brand")),
        "price": price,
        "promo_price": promo if promo and promo != price else "",
        "promo_label": _text(item.get("promo_label")),
        "image_src": safe_image_url(item.get("image_url")),
        "unit": _text(item.get("unit")),
    }


def _quick_replies(data: dict[str, Any]) -> dict[str, Any]:
    used = data.get("used")
    replies = [
        {
            "label": _text(reply.get("label")) or _text(reply.get("value")),
            "used": used is not None and reply.get("value") == used,
        }
        for reply in _dicts(data.get("replies"))
    ]
    return {"prompt": _text(data.get("prompt")), "replies": replies, "answered": used is not None}


def _checklist(data: dict[str, Any]) -> dict[str, Any]:
    submitted_raw = data.get("submitted")
    submitted = {str(item) for item in submitted_raw} if isinstance(submitted_raw, list) else set()
    lines = [
        {
            "name": _text(item.get("name")),
            "amount": " ".join(part for part in (quantity(item.get("quantity")), _text(item.get("unit"))) if part),
            "sku": _text(item.get("sku")),
            "checked": item.get("checked") is True,
            "submitted": str(item.get("id")) in submitted,
        }
        for item in _dicts(data.get("items"))
    ]
    return {
        "title": _text(data.get("title")),
        "servings": _text(data.get("servings")),
        "lines": lines,
        "was_submitted": isinstance(submitted_raw, list),
    }


def _cart_change(data: dict[str, Any]) -> dict[str, Any]:
    action = _text(data.get("action"))
    items = _dicts(data.get("items"))
    return {
        "action": action,
        "action_label": CART_ACTIONS.get(action, action),
        "sku": _text(data.get("sku")),
        "name": _text(data.get("name")),
        "quantity": quantity(data.get("quantity")),
        "price": money(data.get("price")),
        "item_count": len(items),
        "total": money(data.get("total")),
    }


def _error(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": _text(data.get("code")) or message.text,
        "retry_after": _text(data.get("retry_after")),
        "detail": _text(data.get("message")),
    }


def _notice(data: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    if len(raw) > MAX_NOTICE_CHARS:
        raw = raw[:MAX_NOTICE_CHARS] + "\n…"
    return {"raw": raw}


def _action(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": _text(data.get("action")),
        "sku": _text(data.get("sku")),
        "quantity": quantity(data.get("quantity")),
    }


def build_entry(message: Message) -> Entry:
    """The view model of one stored message; unknown kinds fall back to a notice showing the raw frame."""
    data, kind = message.data, message.kind
    common = {"seq": message.seq, "role": message.role, "created_at": message.created_at, "complete": message.complete}
    if kind == Message.Kind.TEXT:
        if message.role == Message.Role.ASSISTANT:
            return Entry(kind=kind, text=message.text, html=render_markdown(message.text), **common)
        return Entry(kind=kind, text=message.text, **common)
    builders = {
        Message.Kind.ACTION: lambda: _action(data),
        Message.Kind.PRODUCT_CARDS: lambda: {"products": [_product(item) for item in _dicts(data.get("items"))]},
        Message.Kind.QUICK_REPLIES: lambda: _quick_replies(data),
        Message.Kind.CHECKLIST: lambda: _checklist(data),
        Message.Kind.CART: lambda: _cart_change(data),
        Message.Kind.ERROR: lambda: _error(message, data),
    }
    builder = builders.get(kind)
    if builder is None:
        label = message.text or _text(data.get("type"))
        return Entry(kind=Message.Kind.NOTICE, text=label, body=_notice(data), **common)
    return Entry(kind=kind, text=message.text, body=builder(), **common)


def build_entries(messages: Iterable[Message]) -> list[Entry]:
    return [build_entry(message) for message in messages]


def cart_lines(cart: Any) -> list[dict[str, str]]:
    """The conversation's current cart (denormalised on the row) for the summary table."""
    return [
        {
            "sku": _text(item.get("sku")),
            "name": _text(item.get("name")),
            "quantity": quantity(item.get("quantity")),
            "unit": _text(item.get("unit")),
            "price": money(item.get("price")),
            "promo_price": money(item.get("promo_price")),
        }
        for item in _dicts(cart)
    ]


# --- list filters ---------------------------------------------------------------------------------------------


class StoreFilter(admin.SimpleListFilter):
    """Stores seen in conversations; a plain ``AllValuesFieldListFilter`` would list every value unbounded."""

    title = _("store")
    parameter_name = "store"
    max_choices = 100

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        # DISTINCT over the leading column of the (store_id, -created_at) index: an index-only scan.
        stores = (
            Conversation.objects.order_by("store_id").values_list("store_id", flat=True).distinct()[: self.max_choices]
        )
        return [(store, store or "—") for store in stores]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        value = self.value()
        return queryset if value is None else queryset.filter(store_id=value)


class HasCartFilter(admin.SimpleListFilter):
    """Chats that ended with something in the cart are the ones that turned into shopping."""

    title = _("has cart")
    parameter_name = "has_cart"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value() == "yes":
            return queryset.filter(cart_count__gt=0)
        if self.value() == "no":
            return queryset.filter(cart_count__lte=0)
        return queryset


# --- date hierarchy -------------------------------------------------------------------------------------------


def _period_start(moment: datetime, kind: str, tz: tzinfo) -> datetime:
    local = moment.astimezone(tz)
    return datetime(local.year, 1 if kind == "year" else local.month, 1 if kind != "day" else local.day, tzinfo=tz)


def _next_period(start: datetime, kind: str, tz: tzinfo) -> datetime:
    if kind == "year":
        return datetime(start.year + 1, 1, 1, tzinfo=tz)
    if kind == "month":
        year, month = divmod(start.month, 12)
        return datetime(start.year + year, month + 1, 1, tzinfo=tz)
    return datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)


class ConversationAdminQuerySet(QuerySet):
    """The changelist's queryset, with a ``datetimes()`` that hops along the ``created_at`` index.

    Django's date hierarchy asks ``SELECT DISTINCT trunc(created_at)`` over every matching row; on SQLite the
    truncation is a Python function called per row (~0.7 s at 100k conversations). Here each period costs one
    ``MIN(created_at) WHERE created_at >= <start of next period>``, an index probe, so the cost follows the
    number of periods shown (at most 12 months, 31 days, or the years in the data), not the number of rows.
    """

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: tzinfo | None = None) -> Any:
        if field_name != "created_at" or kind not in ("year", "month", "day") or order != "ASC":
            return super().datetimes(field_name, kind, order=order, tzinfo=tzinfo)
        tz = tzinfo or timezone.get_current_timezone()
        periods: list[datetime] = []
        earliest = self.aggregate(first=Min(field_name))["first"]
        while earliest is not None and len(periods) < MAX_HIERARCHY_PERIODS:
            start = _period_start(earliest, kind, tz)
            periods.append(start)
            later = self.filter(**{f"{field_name}__gte": _next_period(start, kind, tz)})
            earliest = later.aggregate(first=Min(field_name))["first"]
        return periods


# --- conversation admin ---------------------------------------------------------------------------------------


def _as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


def _download(conversations: QuerySet[Conversation], fmt: exports.ExportFormat) -> StreamingHttpResponse:
    ordered = conversations.order_by("created_at", "pk")
    response = StreamingHttpResponse(exports.stream_export(ordered, fmt), content_type=exports.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{exports.export_filename(fmt)}"'
    return response


class ReadOnlyAdminMixin:
    """No adding and no editing for anyone, superusers included; viewing and deleting follow the permissions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "started",
        "last_activity",
        "user_id",
        "store_id",
        "turn_count",
        "cart_items",
        "cart_total_display",
        "status",
        "upstream_id",
    )
    list_display_links = ("started",)
    list_filter = ("created_at", StoreFilter, "status", HasCartFilter)
    # The columns live on the conversation row and it has no foreign keys: nothing to join, no per-row query.
    list_select_related = False
    list_per_page = 50
    show_full_result_count = False
    date_hierarchy = "created_at"  # served by ConversationAdminQuerySet.datetimes
    ordering = ("-updated_at",)
    # Shown for the search box; the matching itself is get_search_results below.
    search_fields = ("public_id", "upstream_id", "user_id")
    search_help_text = _(
        "Exact conversation id (public UUID or upstream id) or user id; or any part of a message text "
        "(at least 3 characters)."
    )  # a term equal to an id is not also looked for in texts: see get_search_results
    actions = ("export_json", "export_csv")
    # session_key is the shopper's session cookie: a credential, so it is never shown.
    fieldsets = (
        (None, {"fields": ("public_id", "upstream_id", "title", "user_id", "store_id")}),
        (_("State"), {"fields": ("status", "busy_since", "turn_count", "last_seq", "last_error")}),
        (_("Cart"), {"fields": ("cart_items", "cart_total")}),
        (_("Time"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "public_id",
        "upstream_id",
        "title",
        "user_id",
        "store_id",
        "status",
        "busy_since",
        "turn_count",
        "last_seq",
        "last_error",
        "cart_items",
        "cart_total",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset = super().get_queryset(request)
        return ConversationAdminQuerySet(model=queryset.model, query=queryset.query, using=queryset.db)

    # ---- columns

    @admin.display(description=_("started"), ordering="created_at")
    def started(self, obj: Conversation) -> datetime:
        return obj.created_at

    @admin.display(description=_("last activity"), ordering="updated_at")
    def last_activity(self, obj: Conversation) -> datetime:
        return obj.updated_at

    @admin.display(description=_("cart items"), ordering="cart_count")
    def cart_items(self, obj: Conversation) -> str:
        return str(obj.cart_count)  # lines, as on the shopper's badge

    @admin.display(description=_("cart total"), ordering="cart_total")
    def cart_total_display(self, obj: Conversation) -> str:
        return money(obj.cart_total)

    # ---- search

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        """An exact id wins; only a term that is no id is looked for in message text.

        Ids are compared for equality, each through its own index, so an id search costs a few index probes.
        Text has no usable index (``icontains``), and ORing it with the ids would make every id search scan
        all messages too; hence one cheap indexed ``exists()`` decides which meaning the term has. Text is
        matched through a correlated ``EXISTS``: no join, so no duplicate rows and no ``DISTINCT``, and the page
        query and the date hierarchy's index probes stop at the first matches. (``pk IN (subquery)`` counts
        faster on SQLite but re-reads every message in each of those probes: 2.9 s against 1.1 s at 100k.)
        """
        term = search_term.strip()[:MAX_SEARCH_TERM]
        if not term:
            return queryset, False
        ids = Q(upstream_id=term) | Q(user_id=term)
        public_id = _as_uuid(term)
        if public_id is not None:
            ids |= Q(public_id=public_id)
        if public_id is not None or len(term) < MIN_TEXT_SEARCH or Conversation.objects.filter(ids).exists():
            return queryset.filter(ids), False
        in_text = Exists(Message.objects.filter(conversation=OuterRef("pk"), text__icontains=term))
        return queryset.filter(in_text), False

    # ---- actions

    @admin.action(description=_("Export selected conversations as JSON"), permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> StreamingHttpResponse:
        return _download(queryset, "json")

    @admin.action(description=_("Export selected conversations as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> StreamingHttpResponse:
        return _download(queryset, "csv")

    # ---- deletion

    def get_deleted_objects(
        self, objs: Iterable[Conversation], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        """Messages are parts of their conversation, not separate records an admin decides on.

        Django's default would demand the message delete permission too and list every message on the
        confirmation page (thousands for a long chat, every row of the table for "select all"); here the
        conversation's delete permission is enough and messages are summarised as a count.
        """
        conversations = objs if isinstance(objs, QuerySet) else Conversation.objects.filter(pk__in=[o.pk for o in objs])
        total = conversations.count()
        shown = [str(conversation) for conversation in conversations[:DELETE_PREVIEW]]
        if total > len(shown):
            shown.append(_("…and %(count)d more") % {"count": total - len(shown)})
        messages = Message.objects.filter(conversation__in=conversations.values("pk")).count()
        model_count = {
            str(Conversation._meta.verbose_name_plural): total,
            str(Message._meta.verbose_name_plural): messages,
        }
        perms_needed = set() if self.has_delete_permission(request) else {str(Conversation._meta.verbose_name)}
        return shown, model_count, perms_needed, []

    # ---- conversation page

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        live = path(
            "<path:object_id>/transcript/",
            self.admin_site.admin_view(self.transcript_view),
            name="{}_{}_transcript".format(*info),
        )
        return [live, *super().get_urls()]

    def transcript_url(self, obj: Conversation) -> str:
        return reverse(f"{self.admin_site.name}:chat_conversation_transcript", args=[quote(obj.pk)])

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Conversation | None = None,
    ) -> HttpResponse:
        """Adds the transcript; called after the view has checked the permission and found the object."""
        if obj is not None:
            context.update(self._transcript_context(obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _transcript_context(self, obj: Conversation) -> dict[str, Any]:
        latest = list(obj.messages.order_by("-seq")[:TRANSCRIPT_LIMIT])
        latest.reverse()
        entries = build_entries(latest)
        return {
            "entries": entries,
            "cart_entries": [entry for entry in entries if entry.kind == Message.Kind.CART],
            "transcript_truncated": len(latest) >= TRANSCRIPT_LIMIT,
            "transcript_limit": TRANSCRIPT_LIMIT,
            "current_cart": cart_lines(obj.cart),
            "current_total": money(obj.cart_total),
            "last_seq": latest[-1].seq if latest else 0,
            "poll_url": self.transcript_url(obj),
            "poll_seconds": POLL_SECONDS,
            "conversation": obj,
        }

    def transcript_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Messages after ``?after=<seq>`` as htmx fragments, for the conversation page's polling.

        Staff only (``admin_view``) and only with view permission on conversations, like the page itself.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        after = _non_negative_int(request.GET.get("after"))
        batch = list(obj.messages.filter(seq__gt=after).order_by("seq")[:POLL_BATCH])
        entries = build_entries(batch)
        context = {
            "entries": entries,
            "cart_entries": [entry for entry in entries if entry.kind == Message.Kind.CART],
            "last_seq": batch[-1].seq if batch else after,
            "poll_url": self.transcript_url(obj),
            "poll_seconds": POLL_SECONDS,
            "conversation": obj,
            "current_total": money(obj.cart_total),
        }
        return TemplateResponse(request, "admin/chat/conversation/transcript_update.html", context)


def _non_negative_int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


# --- message admin --------------------------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Raw messages, for debugging a payload; the conversation page is the place to read a chat."""

    list_display = ("id", "conversation", "seq", "role", "kind", "complete", "created_at")
    list_filter = ("role", "kind", "complete")
    list_select_related = ("conversation",)
    list_per_page = 50
    show_full_result_count = False
    raw_id_fields = ("conversation",)
    # Newest first by primary key: the model's ordering ("conversation", "seq") would sort by the conversation's
    # own ordering through a join, over every message.
    ordering = ("-id",)
    fields = ("conversation", "seq", "role", "kind", "text", "payload", "complete", "client_key", "created_at")
    readonly_fields = fields
