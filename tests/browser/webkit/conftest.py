"""WebKit, the engine of iOS's WKWebView: Debian's WebKitGTK WebDriver (``WebKitWebDriver``) driven by Selenium.

Playwright's own WebKit build cannot be downloaded here; Debian packages WebKitGTK's WebDriver, which runs its
MiniBrowser under an X server (Xvfb, started here; ``apt-get install webkit2gtk-driver xvfb``, as ``.ci/run``
does). One browser session serves a whole module: starting it is the slow part. Each test is a new shopper.

The page is reached through :class:`CuttableProxy`, a TCP pass-through the test can cut like a network drop: a
WebKit page has no hook to reach its socket from outside (WebKitGTK's WebDriver has no script-before-load).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer

WEBKIT_DRIVER = shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"


class CuttableProxy:
    """A loopback TCP pass-through to the app server whose open connections :meth:`cut` drops at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink, pair), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            if pair not in self._pairs:
                return
            self._pairs.discard(pair)
        for end in pair:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv() on this socket
            end.close()

    def cut(self) -> int:
        """Drop every open connection without a closing handshake (the page sees 1006); returns how many."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._drop(pair)
        return len(pairs)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # close() alone does not wake a thread blocked in accept()
        self.listener.close()
        self.cut()


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """An X display of our own (Xvfb), whatever DISPLAY the developer has."""
    if not os.path.exists(WEBKIT_DRIVER):
        pytest.skip("WebKitGTK's WebDriver is not installed (apt-get install webkit2gtk-driver); .ci/run installs it")
    if not os.path.exists(XVFB):
        pytest.skip("Xvfb is not installed (apt-get install xvfb); .ci/run installs it")
    read_end, write_end = os.pipe()
    command = [XVFB, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"]
    xvfb = subprocess.Popen(command, pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        # Xvfb writes its display number to this pipe once it accepts clients: an event to wait for, not a delay.
        ready, _, _ = select.select([read_end], [], [], 30)
        number = os.read(read_end, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit code {xvfb.poll()})")
        yield f":{number}"
    finally:
        os.close(read_end)
        xvfb.terminate()
        xvfb.wait(10)


@pytest.fixture(scope="module")
def webkit(display: str) -> Iterator[Any]:
    """One WebKitGTK MiniBrowser session for the module, at the phone size of the Chromium tests."""
    from selenium import webdriver
    from selenium.webdriver.webkitgtk.options import Options
    from selenium.webdriver.webkitgtk.service import Service

    # An explicit driver path: Selenium never tries to download one.
    service = Service(executable_path=WEBKIT_DRIVER, env={**os.environ, "DISPLAY": display})
    options = Options()
    options.overlay_scrollbars_enabled = True  # like iOS: scrollbars take no room from the layout
    driver = webdriver.WebKitGTK(options=options, service=service)
    try:
        driver.set_window_size(390, 844)
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app in the development setup (``DJANGO_DEBUG=1``, what the README's first command runs): the Chromium
    tests run it as deployed, so the WebKit tests are the ones that load the development page in a browser. WebKit
    would also keep no Secure cookie from a plain-HTTP page, which the deployed setup sets."""
    server = AppServer(tmp_path_factory.mktemp("webkit"), DJANGO_DEBUG="1").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(dev_server: AppServer) -> Iterator[CuttableProxy]:
    front = CuttableProxy(dev_server.port)
    yield front
    front.close()
