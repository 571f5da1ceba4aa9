"""Languages without a browser: the committed catalog, per-locale formatting and which language a request gets."""

from __future__ import annotations

import gettext
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.utils import translation

from chat.presentation import formatting, texts
from chat.web import identity

LOCALE = Path(settings.BASE_DIR) / "locale"
PO = LOCALE / "uk" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "uk" / "LC_MESSAGES" / "django.mo"


@pytest.mark.parametrize("language", ["uk", "ru"])
@pytest.mark.parametrize(
    "table",
    [
        texts.STATUS_TEXTS,
        texts.ERROR_TEXTS,
        texts.CART_ACTION_TEXTS,
        texts.CART_NOTE_VERBS,
        texts.PAGE_TEXTS,
        dict(enumerate(texts.STARTERS)),
    ],
    ids=["status", "error", "cart", "cart-note", "page", "starters"],
)
def test_every_code_has_ukrainian_and_russian_wording(table: dict[object, object], language: str) -> None:
    """A code left in English means the catalog is stale or the code new: the shopper would read English."""
    untranslated = []
    for code, text in table.items():
        with translation.override("en"):
            english = str(text)
        with translation.override(language):
            translated = str(text)
        if translated == english:
            untranslated.append(code)
    assert untranslated == []


def test_unknown_codes_fall_back_to_localized_generic_wording() -> None:
    with translation.override("uk"):
        assert texts.error_text("something_new") == "Щось пішло не так. Спробуйте ще раз."
        assert texts.status_text("something_new") == "Працюю…"
        assert texts.status_text("") == ""


NO_MSGFMT = "gettext's msgfmt is not installed (apt-get install gettext; .ci/run does)"


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason=NO_MSGFMT)
@pytest.mark.parametrize("language", ["uk", "ru"])
def test_the_committed_catalog_is_complete_and_compiled(tmp_path: Path, language: str) -> None:
    """No untranslated or fuzzy entries, and the committed .mo is exactly the compiled .po."""
    po, mo = (LOCALE / language / "LC_MESSAGES" / name for name in ("django.po", "django.mo"))
    check = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(tmp_path / "fresh.mo"), str(po)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "untranslated" not in check.stderr and "fuzzy" not in check.stderr, check.stderr
    with mo.open("rb") as committed, (tmp_path / "fresh.mo").open("rb") as fresh:
        assert gettext.GNUTranslations(committed)._catalog == gettext.GNUTranslations(fresh)._catalog  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("language", "price", "weight", "per_kg", "pieces"),
    [
        ("uk", "42,90\u00a0₴", "0,3\u00a0кг", "за кг", "2\u00a0шт."),
        ("en", "₴42.90", "0.3\u00a0kg", "per kg", "2\u00a0pcs"),
        ("ru", "42,90\u00a0₴", "0,3\u00a0кг", "за кг", "2\u00a0шт."),
    ],
)
def test_numbers_prices_and_units_per_locale(language: str, price: str, weight: str, per_kg: str, pieces: str) -> None:
    with translation.override(language):
        assert formatting.money("42.9") == price
        assert formatting.quantity("0.3", "kg") == weight
        assert formatting.per_unit("kg") == per_kg
        assert formatting.quantity(2, "pcs") == pieces
        assert formatting.per_unit("pcs") == ""


def test_russian_has_every_ukrainian_entry() -> None:
    """Russian is made from the Ukrainian catalog (issue 16): a new entry belongs in both."""
    with MO.open("rb") as uk, (LOCALE / "ru" / "LC_MESSAGES" / "django.mo").open("rb") as ru:
        ukrainian = set(gettext.GNUTranslations(uk)._catalog)  # type: ignore[attr-defined]
        russian = set(gettext.GNUTranslations(ru)._catalog)  # type: ignore[attr-defined]
    assert ukrainian - russian == set()


def test_big_prices_group_thousands_per_locale() -> None:
    with translation.override("uk"):
        assert formatting.money("1234.5") == "1\u00a0234,50\u00a0₴"
    with translation.override("en"):
        assert formatting.money("1234.5") == "₴1,234.50"


@pytest.mark.parametrize(
    ("count", "word"), [(1, "порція"), (3, "порції"), (5, "порцій"), (11, "порцій"), (21, "порція")]
)
def test_servings_use_ukrainian_plural_forms(count: int, word: str) -> None:
    template = Template(
        "{% load i18n %}{% blocktranslate count servings=n %}{{ servings }} serving"
        "{% plural %}{{ servings }} servings{% endblocktranslate %}"
    )
    with translation.override("uk"):
        assert template.render(Context({"n": count})) == f"{count} {word}"


def test_language_precedence_query_then_token_then_django() -> None:
    """``?lang=`` > the signed entry token's language > LocaleMiddleware's (cookie, Accept-Language) > uk."""
    factory = RequestFactory()

    def request(query: str = "", middleware: str | None = None) -> object:
        made = factory.get(f"/{query}")
        if middleware:
            made.LANGUAGE_CODE = middleware
        return made

    assert identity.request_language(request("?lang=en", "uk"), token_language="uk") == "en"  # type: ignore[arg-type]
    assert identity.request_language(request("", "uk"), token_language="en-GB") == "en"  # type: ignore[arg-type]
    assert identity.request_language(request("", "en"), token_language=None) == "en"  # type: ignore[arg-type]
    assert identity.request_language(request("?lang=xx", "en"), token_language="de") == "en"  # type: ignore[arg-type]
    with translation.override("uk"):
        assert identity.request_language(request("?lang=fr"), token_language="") == "uk"  # type: ignore[arg-type]


@pytest.mark.django_db
def test_the_page_follows_accept_language_query_and_cookie() -> None:
    client = Client()
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert '<html lang="en">' in page.content.decode()
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE")  # nothing we speak: the default, Ukrainian
    assert '<html lang="uk">' in page.content.decode() and "Повідомлення" in page.content.decode()

    page = client.get("/?lang=en", HTTP_ACCEPT_LANGUAGE="uk-UA")
    assert '<html lang="en">' in page.content.decode()
    assert page.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="uk-UA")  # the cookie the switcher left wins over the header
    assert '<html lang="en">' in page.content.decode()
    assert "lang=en" in page.content.decode()  # the socket renders fragments in the same language


@pytest.mark.parametrize(
    ("language", "place", "seconds", "expected"),
    [
        ("uk", 3, 8.2, "Ви третій у черзі · ~10 с"),
        ("en", 3, 8.2, "You are third in line · ~10 s"),
        ("en", 1, 0.5, "You are first in line · ~5 s"),
        ("uk", 12, 130, "Ви 12-й у черзі · ~3 хв"),
        ("ru", 2, 12, "Вы второй в очереди · ~15 с"),
    ],
)
def test_the_place_in_line_reads_as_words_with_an_estimate(
    language: str, place: int, seconds: float, expected: str
) -> None:
    with translation.override(language):
        assert texts.queue_text(place, seconds) == expected
