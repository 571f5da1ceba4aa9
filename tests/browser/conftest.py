"""A real app server (Daphne, the embedded sandbox, its own SQLite file) and Debian's Chromium via Playwright.

The server runs in a subprocess exactly as in production, so these tests exercise the real HTTP and WebSocket
stack; each test gets a fresh browser context, i.e. a new shopper.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import DEPLOYED, Daphne, collected_static

#: Debian's Chromium for the tests: its headless shell (package chromium-headless-shell), which is the same Blink and
#: V8 without the browser's own UI and what Playwright itself runs headless by default; the same tests cost a quarter
#: less CPU than in the full browser (package chromium), which runs them when the shell is not installed.
#: ``VIZOCHOK_TEST_CHROMIUM`` names another binary (``/usr/bin/chromium`` for the full browser).
CHROMIUM = (
    os.environ.get("VIZOCHOK_TEST_CHROMIUM")
    or shutil.which("chromium-headless-shell")
    or shutil.which("chromium")
    or "/usr/bin/chromium"
)
#: Playwright's own ``--disable-features`` list (playwright-core's chromiumSwitches, as pinned in requirements-dev.txt).
#: Chromium keeps only the last ``--disable-features`` on its command line, so ours must repeat it;
#: tests/browser/test_chromium.py checks it against the switch Playwright puts on the running browser.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
    "TcpPortRandomizationWin",
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "AimEnabled",
    "PreconnectToSearch",
    "msForceBrowserSignIn",
    "msEdgeUpdateLaunchServicesPreferredVersion",
)
#: Chromium 156 preloads the omnibox's two popups (chrome://omnibox-popup.top-chrome/), each a WebUI renderer, for
#: every window, headless too, and each browser context is a window: 20 contexts cost 19.4 CPU-seconds with them and
#: 5.0 without, on a suite that is bound by CPU. No page of ours can tell.
UNUSED_BROWSER_UI = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED_FEATURES, *UNUSED_BROWSER_UI)),
]

pytestmark = pytest.mark.browser


class AppServer(Daphne):
    """The app with its own SQLite file and the embedded sandbox upstream, deployed as in production
    (``DJANGO_DEBUG=0``, collectstatic's files: the page's one bundle, tests/processes.py ``DEPLOYED``) but on plain
    HTTP on loopback. ``DJANGO_DEBUG="1"`` gives the development setup instead (the module graph, each file its own
    request), as the WebKit tests use it."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.db = tmp / "db.sqlite3"
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
            "DATABASE_URL": f"sqlite:///{self.db}",
            **DEPLOYED,
            "VIZOCHOK_WS_URL": "",
            "VIZOCHOK_SANDBOX_PACE": "80",
            "VIZOCHOK_IDLE_GRACE": "2",
            # Every test's shoppers come from one loopback address: its turn rate is not what these tests test.
            "VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS": "0",
            **env,
        }
        full_env.pop("REDIS_URL", None)
        if full_env["DJANGO_DEBUG"] != "1":  # the development setup serves the source folders instead
            full_env["DJANGO_STATIC_ROOT"] = str(collected_static())
        super().__init__("the app server", tmp / "server.log", full_env)

    def start(self) -> AppServer:
        self.migrate()
        self.launch()
        return self


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("app")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's Chromium is not installed (apt-get install chromium-headless-shell); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_page(browser: Any, base_url: str, **options: Any) -> Any:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=base_url, locale=options.pop("locale", "en-US"), **options
    )
    # Waits end on the event; the bound is for a turn through a paced upstream while the other workers of a parallel
    # run (pytest.ini) load the same cores: an undo's reply took over 10 s there and under 7 s alone.
    context.set_default_timeout(20_000)
    return context.new_page()


@pytest.fixture
def page(browser: Any, app_server: AppServer, console_errors: ConsoleErrors) -> Iterator[Any]:
    """A page of the shared app server; its test fails if the page logs an error it did not allow (issue 22)."""
    page = console_errors.watch(new_page(browser, app_server.url))
    yield page
    page.context.close()


class ConsoleErrors:
    """What pages log as errors (console.error, uncaught exceptions), for a test to fail on.

    ``allow`` names messages a test expects because it breaks the network on purpose: Chromium itself logs a
    WebSocket that failed to connect, which no page can prevent.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        return page

    def allow(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [text for text in self.errors if not any(fragment in text for fragment in self.allowed)]


@pytest.fixture
def console_errors() -> Iterator[ConsoleErrors]:
    """Fails the test if a page it watched (``console_errors.watch(page)``) logged an error it did not allow."""
    recorded = ConsoleErrors()
    yield recorded
    assert not recorded.unexpected(), f"the page logged errors: {recorded.unexpected()}"


@pytest.fixture
def quiet_page(page: Any, console_errors: ConsoleErrors) -> Any:
    """The ``page`` fixture, failing its test on any console error."""
    return console_errors.watch(page)


def open_chat(page: Any, path: str = "/?lang=en") -> None:
    page.goto(path)
    page.wait_for_selector("#chat[data-state=ready]")


def send_text(page: Any, text: str) -> None:
    page.fill("#composer textarea[name=text]", text)
    page.press("#composer textarea[name=text]", "Enter")


def wait_ready(page: Any) -> None:
    page.wait_for_selector("#chat[data-state=ready]")
