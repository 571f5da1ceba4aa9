"""Ukrainian (the default) and English in Debian's Chromium: Accept-Language, the switcher, numbers and units."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready
from tests.browser.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

UAH_UK = re.compile(r"\d+,\d{2}\u00a0₴")
UAH_EN = re.compile(r"₴\d+\.\d{2}")


def test_a_ukrainian_browser_gets_ukrainian_words_numbers_and_units(browser: Any, app_server: AppServer) -> None:
    page = new_page(browser, app_server.url, locale="uk-UA", bypass_csp=True)  # bypass: axe is injected inline
    try:
        open_chat(page, "/")  # no ?lang=, no cookie: Accept-Language decides
        assert page.get_attribute("html", "lang") == "uk"
        assert page.locator("label[for=composer-text]").inner_text() == "Повідомлення"
        assert page.get_attribute("#composer-text", "placeholder") == "Запитайте про продукти чи рецепт…"

        send_text(page, "яблука")
        wait_ready(page)
        weighed = page.locator(".product-card[data-unit=kg]").first
        quantity = weighed.locator("input[name=quantity]")
        assert re.fullmatch(r"\d+,\d", quantity.input_value())
        assert weighed.locator(".stepper__unit").inner_text() == "кг"
        price = weighed.locator(".product-card__price").inner_text()
        assert UAH_UK.search(price) and "за\u00a0кг" in price.replace(" ", "\u00a0")
        weighed.locator("button[data-action=increment]").click()
        chosen = quantity.input_value()
        assert re.fullmatch(r"\d+,\d", chosen)  # the page's own formatting after a step keeps the comma

        weighed.locator("button[data-action=add]").click()
        wait_ready(page)
        page.wait_for_selector(".cart-note")
        assert page.locator(".msg--action .msg__text").last.inner_text().endswith(f"× {chosen}\u00a0кг")
        assert page.locator(".msg--action .msg__text").last.inner_text().startswith("Додати: ")
        assert page.locator(".cart-note").last.inner_text().startswith("Додано: ")
        assert f"{chosen}\u00a0кг" in page.locator(".cart-note").last.inner_text()
        assert UAH_UK.fullmatch(page.locator("#cart-badge .cart-badge__total").inner_text())

        assert axe_violations(page) == []
    finally:
        page.context.close()


def test_the_switcher_changes_the_language_and_it_sticks(browser: Any, app_server: AppServer) -> None:
    page = new_page(browser, app_server.url, locale="uk-UA")
    try:
        open_chat(page, "/")
        send_text(page, "milk")
        wait_ready(page)
        page.wait_for_selector(".product-card")
        assert UAH_UK.search(page.locator(".product-card__price").first.inner_text())

        page.click("button[data-action=menu]")
        assert page.get_attribute("#chat-menu .menu__langs a[aria-current]", "lang") == "uk"
        page.click("#chat-menu .menu__langs a[lang=en]")
        page.wait_for_selector("html[lang=en]")
        wait_ready(page)
        # The same conversation, now in English: words, prices, and the socket's language.
        assert page.locator("label[for=composer-text]").inner_text() == "Message"
        assert UAH_EN.search(page.locator(".product-card__price").first.inner_text())
        assert "lang=en" in (page.get_attribute("#chat", "ws-connect") or "")

        open_chat(page, "/")  # the choice beats the browser's Accept-Language from now on
        assert page.get_attribute("html", "lang") == "en"
        page.click("button[data-action=menu]")
        page.click("#chat-menu .menu__langs a[lang=uk]")
        page.wait_for_selector("html[lang=uk]")
        assert page.locator("label[for=composer-text]").inner_text() == "Повідомлення"
    finally:
        page.context.close()


def test_the_switcher_names_each_language_in_itself(browser: Any, app_server: AppServer) -> None:
    page = new_page(browser, app_server.url, locale="uk-UA")
    try:
        open_chat(page, "/?lang=uk")
        page.click("button[data-action=menu]")
        names = {
            link.get_attribute("lang"): link.inner_text() for link in page.locator("#chat-menu .menu__langs a").all()
        }
        assert names == {"uk": "Українська", "en": "English", "ru": "Русский"}
    finally:
        page.context.close()


def test_russian_is_a_third_language(browser: Any, app_server: AppServer) -> None:
    page = new_page(browser, app_server.url, locale="ru-RU", bypass_csp=True)  # bypass: axe is injected inline
    try:
        open_chat(page, "/")  # Accept-Language: ru
        assert page.get_attribute("html", "lang") == "ru"
        assert page.locator("label[for=composer-text]").inner_text() == "Сообщение"
        assert page.locator(".starter").all_inner_texts() == ["Молоко", "Рецепт борща", "Добавь два молока"]
        page.locator(".starter").first.click()
        wait_ready(page)
        card = page.locator(".product-card").first
        assert UAH_UK.search(card.locator(".product-card__price").inner_text())  # 42,90 ₴, as in Ukrainian
        card.locator("button[data-action=add]").click()
        page.wait_for_selector(".cart-note")
        wait_ready(page)
        assert page.locator(".cart-note").last.inner_text().startswith("Добавлено: ")
        assert page.locator(".msg--action .msg__text").last.inner_text().startswith("Добавить: ")
        page.click("button[data-action=menu]")
        assert page.get_attribute("#chat-menu .menu__langs a[aria-current]", "lang") == "ru"
        assert axe_violations(page) == []
    finally:
        page.context.close()
