"""A real app server (Daphne, the embedded sandbox, its own SQLite file) and Debian's Chromium via Playwright.

The server runs in a subprocess exactly as in production, so these tests exercise the real HTTP and WebSocket
stack; each test gets a fresh browser context, i.e. a new shopper.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            # Polling a port has no event to await; the loop is bounded by the deadline.
            time.sleep(0.05)
    raise TimeoutError("the app server did not start listening")


class AppServer:
    def __init__(self, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "db.sqlite3"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
            "DATABASE_URL": f"sqlite:///{self.db}",
            "DJANGO_DEBUG": "1",
            "VIZOCHOK_WS_URL": "",
            "VIZOCHOK_SANDBOX_PACE": "80",
            "VIZOCHOK_IDLE_GRACE": "2",
            **env,
        }
        self.env.pop("REDIS_URL", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AppServer:
        migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
        subprocess.run(migrate, cwd=ROOT, env=self.env, check=True, capture_output=True)
        log = (self.tmp / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "vizochok_site.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.process, time.monotonic() + 30)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return (self.tmp / "server.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("app")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_page(browser: Any, base_url: str, **options: Any) -> Any:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=base_url, locale=options.pop("locale", "en-US"), **options
    )
    context.set_default_timeout(10_000)
    return context.new_page()


@pytest.fixture
def page(browser: Any, app_server: AppServer) -> Iterator[Any]:
    page = new_page(browser, app_server.url)
    yield page
    page.context.close()


def open_chat(page: Any, path: str = "/?lang=en") -> None:
    page.goto(path)
    page.wait_for_selector("#chat[data-state=ready]")


def send_text(page: Any, text: str) -> None:
    page.fill("#composer textarea[name=text]", text)
    page.press("#composer textarea[name=text]", "Enter")


def wait_ready(page: Any) -> None:
    page.wait_for_selector("#chat[data-state=ready]")
