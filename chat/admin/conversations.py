"""Django admin for conversations: a fast read-only list, the transcript as a chat, exports and live updates.

Admins browse chats, they never edit them: the stored conversation is the only record of what the shopper and
the assistant said (the upstream keeps no history), so every field is read-only and nobody can add one by hand.
Deleting stays possible for users holding the delete permission (privacy requests, test data).

The list has to stay quick at 100,000+ conversations, so every column is a field of the conversation row
(turns and cart are denormalised on it), the search matches ids exactly (indexed) and message text through the
conversation's case-folded ``search_text`` column (no join, no ``DISTINCT``, and Cyrillic folds on SQLite too),
the date hierarchy hops along the ``created_at`` index, and the unfiltered total is never counted.

Labels are Ukrainian by default. Django's own phrases put a label into a sentence ("За %(filter_title)s",
"Вибрати %s для перегляду"), which in Ukrainian needs another grammatical case than the field's name, so filter
titles have their own wording (context "admin filter") and page titles are set here rather than composed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.db.models import Exists, Min, Model, OuterRef, Q, QuerySet, Value
from django.db.models.functions import StrIndex
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import npgettext, pgettext_lazy
from django_stubs_ext import StrOrPromise

from chat import exports
from chat.admin.transcript import build_entries, cart_lines, money
from chat.models import Conversation, Feedback, Message
from chat.persistence import store
from chat.web import numbers

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices

AdminModel = TypeVar("AdminModel", bound=Model)

#: The live endpoint hands over at most this many messages per poll; the next poll fetches the rest.
POLL_BATCH = 200
#: Seconds between polls of the live transcript.
POLL_SECONDS = 3
#: The conversation page shows at most the latest this many messages; the export has the full history.
TRANSCRIPT_LIMIT = 2000
#: Message text is searched only for terms at least this long: shorter ones match nearly every chat.
MIN_TEXT_SEARCH = 3
MAX_SEARCH_TERM = 200
#: Periods the date hierarchy lists at one level (years are few; months <= 12, days <= 31 within a level).
MAX_HIERARCHY_PERIODS = 60
#: Conversations named on a delete confirmation page; the rest are counted.
DELETE_PREVIEW = 100
#: The list's first column shows this much of the shopper's first message; the rest is in its tooltip.
PREVIEW_CHARS = 70


def titled(base: type[admin.FieldListFilter], title: Any) -> type[admin.FieldListFilter]:
    """``base`` with its own title instead of the field's name.

    Titles read after Django's "By %(filter_title)s" ("За …"), which in Ukrainian needs the instrumental case, not
    the field's name: they have their own wording, in the translation context "admin filter".
    """

    class Titled(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.title = title

    Titled.__name__ = f"Titled{base.__name__}"
    Titled.label = title  # for reading without a request (tests)
    return Titled


# --- list filters ---------------------------------------------------------------------------------------------


class TurnsFilter(admin.SimpleListFilter):
    """Only conversations with at least one turn unless asked: a page view alone creates an empty one."""

    title = pgettext_lazy("admin filter", "turns")
    parameter_name = "turns"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, Any]]:
        return [("none", pgettext_lazy("admin", "without turns")), ("all", pgettext_lazy("admin", "all"))]

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        """ "With turns" is the default choice, in place of Django's "All" (which is offered as "all")."""
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": pgettext_lazy("admin", "with turns"),
        }
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value() == "all":
            return queryset
        if self.value() == "none":
            return queryset.filter(turn_count=0)
        return queryset.filter(turn_count__gt=0)


class StoreFilter(admin.SimpleListFilter):
    """Stores seen in conversations; a plain ``AllValuesFieldListFilter`` would list every value unbounded."""

    title = pgettext_lazy("admin filter", "store")
    parameter_name = "store"
    max_choices = 100

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        # One seek per store along the (store_id, -created_at) index, not a DISTINCT over all of it (80 ms on
        # PostgreSQL at 100k conversations).
        table = connection.ops.quote_name(Conversation._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH RECURSIVE seen(store) AS (SELECT MIN(store_id) FROM {table} UNION ALL "
                f"SELECT (SELECT MIN(store_id) FROM {table} WHERE store_id > seen.store) FROM seen "
                "WHERE seen.store IS NOT NULL) SELECT store FROM seen WHERE store IS NOT NULL LIMIT %s",
                [self.max_choices],
            )
            stores = [row[0] for row in cursor.fetchall()]
        return [(store_id, store_id or "—") for store_id in stores]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        value = self.value()
        return queryset if value is None else queryset.filter(store_id=value)


class HasCartFilter(admin.SimpleListFilter):
    """Chats that ended with something in the cart are the ones that turned into shopping."""

    title = pgettext_lazy("admin filter", "has cart")
    parameter_name = "has_cart"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, StrOrPromise]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value() == "yes":
            return queryset.filter(cart_count__gt=0)
        if self.value() == "no":
            return queryset.filter(cart_count__lte=0)
        return queryset


class RatingFilter(admin.SimpleListFilter):
    """Chats by their shopper's ratings of the replies (issue 25): where to read what went wrong."""

    title = pgettext_lazy("admin filter", "rating")
    parameter_name = "rating"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, StrOrPromise]]:
        return [
            ("down", pgettext_lazy("admin filter", "a reply rated not helpful")),
            ("up", pgettext_lazy("admin filter", "a reply rated helpful")),
            ("rated", pgettext_lazy("admin filter", "any rating")),
            ("none", pgettext_lazy("admin filter", "no rating")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        rated = Feedback.objects.filter(conversation_id=OuterRef("pk"))
        if self.value() in ("up", "down"):
            return queryset.filter(Exists(rated.filter(value=self.value())))
        if self.value() == "rated":
            return queryset.filter(Exists(rated))
        if self.value() == "none":
            return queryset.filter(~Exists(rated))
        return queryset


# --- date hierarchy -------------------------------------------------------------------------------------------


#: What ``QuerySet.datetimes`` can truncate to.
_DateKind = Literal["year", "month", "week", "day", "hour", "minute", "second"]


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


class ConversationAdminQuerySet(QuerySet[Conversation]):
    """The changelist's queryset, with a ``datetimes()`` that hops along the ``created_at`` index.

    Django's date hierarchy asks ``SELECT DISTINCT trunc(created_at)`` over every matching row; on SQLite the
    truncation is a Python function called per row (~0.7 s at 100k conversations). Here each period costs one
    ``MIN(created_at) WHERE created_at >= <start of next period>``, an index probe, so the cost follows the
    number of periods shown (at most 12 months, 31 days, or the years in the data), not the number of rows.
    """

    def datetimes(
        self, field_name: str, kind: _DateKind, order: Literal["ASC", "DESC"] = "ASC", tzinfo: tzinfo | None = None
    ) -> Any:
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


def _short(moment: datetime) -> str:
    """A list cell's time, short: "29.11 23:33" this year, "29.11.2025" before (the long form, "29 листопада 2026
    р. 23:33", would take two lines or push the list wider than a 1280 px screen)."""
    local = timezone.localtime(moment)
    if local.year == timezone.localdate().year:
        return local.strftime("%d.%m %H:%M")
    return formats.date_format(local, "SHORT_DATE_FORMAT")


def _as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


def _download(
    request: HttpRequest, conversations: QuerySet[Conversation], fmt: exports.ExportFormat
) -> StreamingHttpResponse:
    """The export streamed as it is read: an async iterator under ASGI (Daphne sends each page as it is rendered;
    a synchronous one would be read whole first), a plain one under WSGI."""
    ordered = conversations.order_by("created_at", "pk")
    content: Iterator[str] | AsyncIterator[str]
    content = (
        exports.astream_export(ordered, fmt)
        if isinstance(request, ASGIRequest)
        else exports.stream_export(ordered, fmt)
    )
    response = StreamingHttpResponse(content, content_type=exports.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{exports.export_filename(fmt)}"'
    return response


class ReadOnlyAdminMixin:
    """No adding and no editing for anyone, superusers included; viewing and deleting follow the permissions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TitledAdmin(admin.ModelAdmin[AdminModel]):
    """Page titles that are the model's name: Django composes "Вибрати %s для перегляду" with it in the wrong case."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        title = capfirst(str(self.opts.verbose_name_plural))
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        title = capfirst(str(self.opts.verbose_name))
        return super().change_view(request, object_id, form_url, {"title": title, **(extra_context or {})})


class ConversationChangeList(ChangeList):
    """The list leaves out the cart's JSON (``search_text`` is deferred by the admin's queryset already)."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Conversation]:
        return super().get_queryset(request, exclude_parameters).defer("cart")


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, TitledAdmin[Conversation]):
    # Seven short columns: the first message (cut, whole in its tooltip) names the chat; ids are on its page.
    list_display = (
        "conversation",
        "store_id",
        "turn_count",
        "cart_summary",
        "status",
        "last_activity",
        "started",
    )
    # On a phone (admin.css, <= 640 px) only the first column stays, with the others summed up under the title.
    list_display_links = ("conversation",)
    list_filter = (
        TurnsFilter,
        ("created_at", titled(admin.DateFieldListFilter, pgettext_lazy("admin filter", "start date"))),
        StoreFilter,
        ("status", titled(admin.ChoicesFieldListFilter, pgettext_lazy("admin filter", "status"))),
        HasCartFilter,
        RatingFilter,
    )
    # The columns live on the conversation row and it has no foreign keys: nothing to join, no per-row query.
    list_select_related = False
    list_per_page = 50
    show_full_result_count = False
    date_hierarchy = "created_at"  # served by ConversationAdminQuerySet.datetimes
    ordering = ("-updated_at",)
    # Shown for the search box; the matching itself is get_search_results below.
    search_fields = ("public_id", "upstream_id", "user_id")
    search_help_text = pgettext_lazy(
        "admin",
        "Exact conversation id (public UUID or upstream id) or user id; or any part of a message text "
        "(at least 3 characters), in any letter case.",
    )  # a term equal to an id is not also looked for in texts: see get_search_results
    actions = ("export_json", "export_csv")
    # session_key is the shopper's session cookie: a credential, so it is never shown.
    # The transcript under them is what staff come for: the details that the live status line repeats
    # (state, turns, cart total, last activity) are folded away.
    fieldsets = (
        (None, {"fields": ("title", "public_id", "upstream_id", "user_id", "store_id")}),
        (
            _("State"),
            {"fields": ("status", "busy_since", "turn_count", "last_seq", "last_error"), "classes": ["collapse"]},
        ),
        (_("Cart"), {"fields": ("cart_count", "cart_total"), "classes": ["collapse"]}),
        (_("Time"), {"fields": ("created_at", "updated_at"), "classes": ["collapse"]}),
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
        "cart_count",
        "cart_total",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset = super().get_queryset(request).defer("search_text")  # only the search reads it, in SQL
        return ConversationAdminQuerySet(model=queryset.model, query=queryset.query, using=queryset.db)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ConversationChangeList

    # ---- columns

    @admin.display(description=pgettext_lazy("admin", "conversation"), ordering="title")
    def conversation(self, obj: Conversation) -> str:
        """The shopper's first message, cut to a preview (the whole message in the tooltip), and for phones a
        line with what the other columns say."""
        title = obj.title.strip()
        if not title:
            name = format_html('<span class="vz-untitled">{}</span>', pgettext_lazy("admin", "(no message)"))
        elif len(title) <= PREVIEW_CHARS:
            name = format_html("{}", title)
        else:
            name = format_html('<span title="{}">{}…</span>', title, title[: PREVIEW_CHARS - 1].rstrip())
        turns = npgettext("admin", "%(count)d turn", "%(count)d turns", obj.turn_count) % {"count": obj.turn_count}
        facts = [obj.store_id, turns, self.cart_summary(obj), obj.get_status_display(), _short(obj.updated_at)]
        return format_html('{}<span class="vz-row-meta">{}</span>', name, " · ".join(str(fact) for fact in facts))

    @admin.display(description=pgettext_lazy("admin", "started"), ordering="created_at")
    def started(self, obj: Conversation) -> str:
        return _short(obj.created_at)

    @admin.display(description=pgettext_lazy("admin", "updated"), ordering="updated_at")
    def last_activity(self, obj: Conversation) -> str:
        return _short(obj.updated_at)

    @admin.display(description=pgettext_lazy("admin", "cart"), ordering="cart_total")
    def cart_summary(self, obj: Conversation) -> str:
        """Lines and total in one column ("3 позиції · 77,00 ₴"), "—" for an empty cart: one column less to fit 1280
        px. Not "3 × 77,00": that reads as three at 77,00 each."""
        if obj.cart_count <= 0:
            return "—"
        lines = npgettext("admin", "%(count)d line", "%(count)d lines", obj.cart_count) % {"count": obj.cart_count}
        return f"{lines} · {money(obj.cart_total)}"

    # ---- search

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Conversation], search_term: str
    ) -> tuple[QuerySet[Conversation], bool]:
        """An exact id wins; only a term that is no id is looked for in the conversation's texts.

        Ids are compared for equality, each through its own index, so an id search costs a few index probes.
        Text has no usable index (``LIKE '%…%'``), and ORing it with the ids would make every id search scan the
        texts too; hence one cheap indexed ``exists()`` decides which meaning the term has. Text is matched in
        ``search_text``, the conversation's texts case-folded by Python when they were stored
        (``chat.persistence.store``), against the case-folded term: "молоко", "Молоко" and "МОЛОКО" find the same
        chats on SQLite, whose ``LIKE``/``lower()`` fold ASCII only, and on PostgreSQL alike. One column of the row
        being listed: no join, no ``DISTINCT``, and no scan of a million messages.
        """
        term = search_term.strip()[:MAX_SEARCH_TERM]
        if not term:
            return queryset, False
        # A host's shopper is stored as "ext-<the host's id>"; the admin searches by the id the host knows.
        ids = Q(upstream_id=term) | Q(user_id=term) | Q(user_id=f"ext-{term}")
        public_id = _as_uuid(term)
        if public_id is not None:
            ids |= Q(public_id=public_id)
        if public_id is not None or len(term) < MIN_TEXT_SEARCH or Conversation.objects.filter(ids).exists():
            return queryset.filter(ids), False
        # STRPOS / INSTR rather than LIKE '%…%': the same match without a pattern to interpret, twice as fast.
        found = StrIndex("search_text", Value(store.folded(term)))
        return queryset.alias(text_at=found).filter(text_at__gt=0), False

    # ---- actions

    @admin.action(description=_("Export selected conversations as JSON"), permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> StreamingHttpResponse:
        return _download(request, queryset, "json")

    @admin.action(description=_("Export selected conversations as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> StreamingHttpResponse:
        return _download(request, queryset, "csv")

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
        after = numbers.natural(request.GET.get("after")) or 0
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


# --- message admin --------------------------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, TitledAdmin[Message]):
    """Raw messages, for debugging a payload; the conversation page is the place to read a chat."""

    list_display = ("conversation", "seq", "role", "kind", "completeness", "created_at")
    list_display_links = ("conversation", "seq")
    list_filter = (
        ("role", titled(admin.ChoicesFieldListFilter, pgettext_lazy("admin filter", "role"))),
        ("kind", titled(admin.ChoicesFieldListFilter, pgettext_lazy("admin filter", "kind"))),
        ("complete", titled(admin.BooleanFieldListFilter, pgettext_lazy("admin filter", "completeness"))),
    )
    list_select_related = ("conversation",)
    #: The text, or a conversation's id (pasted from its page) for all its messages: see get_search_results.
    search_fields = ("text",)
    search_help_text = pgettext_lazy("admin", "Words of the message, or a conversation id for all its messages.")
    list_per_page = 50
    show_full_result_count = False
    raw_id_fields = ("conversation",)
    # Newest first by primary key: the model's ordering ("conversation", "seq") would sort by the conversation's
    # own ordering through a join, over every message.
    ordering = ("-id",)
    fields = ("conversation", "seq", "role", "kind", "text", "payload", "completeness", "client_key", "created_at")
    readonly_fields = fields

    @admin.display(description=pgettext_lazy("admin", "complete"), ordering="complete")
    def completeness(self, obj: Message) -> str:
        """Yes or no in words: Django's boolean icon carries an English ``alt`` ("True"/"False")."""
        return str(_("Yes") if obj.complete else _("No"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).defer("conversation__search_text", "conversation__cart")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        """A conversation id finds its messages; other words are looked for in the text, case-folded too (SQLite's
        LIKE folds ASCII only, so "обірвана" would miss "Обірвана")."""
        term = search_term.strip()
        try:
            conversation = uuid.UUID(term)
        except ValueError:
            pass
        else:
            return queryset.filter(conversation__public_id=conversation), False
        if not term:
            return queryset, False
        spellings = {term, term.casefold(), term.capitalize(), term.upper()}
        matches = Q()
        for spelling in spellings:
            matches |= Q(text__contains=spelling)
        return queryset.filter(matches), False
