"""The chat page's first load on a phone network, for ``manage.py bench_load`` (issue 22).

The app runs under Daphne on a free loopback port with its own SQLite file and the embedded sandbox, in the
configuration shoppers get (``DJANGO_DEBUG=0``, ``collectstatic`` with compressed, hashed files), and, for
comparison, in the development default (``DJANGO_DEBUG=1``). Headless Chromium loads ``/`` through Playwright with
Chromium's own network throttling (CDP ``Network.emulateNetworkConditions``): each load in a fresh browser context,
so the cache is cold. "Ready" is the moment ``#chat[data-state=ready]`` is set, from the start of the navigation
(``performance.now()`` in the page, recorded by a MutationObserver installed before any of the page's scripts).
Bytes are what went over the wire (``encodedDataLength``: compressed bodies plus headers), WebSocket excluded.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.relay_bench import ROOT, Child, _free_port, _wait_for_port


@dataclass(frozen=True, slots=True)
class Network:
    """A throttling profile: round-trip latency added to every request, and the link's speed."""

    name: str
    latency_ms: float
    down_kbit: float
    up_kbit: float
    target_s: float

    def conditions(self) -> dict[str, Any]:
        return {
            "offline": False,
            "latency": self.latency_ms,
            "downloadThroughput": self.down_kbit * 1000 / 8,
            "uploadThroughput": self.up_kbit * 1000 / 8,
        }


#: The profiles of issue 22 and their targets (median of the cold loads).
NETWORKS = (
    Network("Slow 4G", latency_ms=150, down_kbit=1600, up_kbit=750, target_s=0.9),
    Network("3G", latency_ms=300, down_kbit=400, up_kbit=400, target_s=2.0),
)

#: Records when #chat first says ready; installed before the page's own scripts (CDP, so the CSP does not apply).
_READY_PROBE = """
(() => {
  const mark = () => {
    const chat = document.getElementById("chat");
    if (chat && chat.dataset.state === "ready" && window.__benchReady === undefined) {
      window.__benchReady = performance.now();
    }
  };
  new MutationObserver(mark).observe(document, { subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-state"] });
})();
"""


@dataclass(slots=True)
class Load:
    ready_s: float
    bytes: int
    requests: int
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Result:
    config: str
    network: Network
    loads: list[Load]

    @property
    def median(self) -> float:
        return statistics.median(load.ready_s for load in self.loads)

    @property
    def met(self) -> bool:
        return self.median <= self.network.target_s

    def row(self) -> str:
        loads = ", ".join(f"{load.ready_s:.2f}" for load in self.loads)
        kib = statistics.median(load.bytes for load in self.loads) / 1024
        requests = statistics.median(load.requests for load in self.loads)
        verdict = "met" if self.met else "MISSED"
        return (
            f"| {self.config} | {self.network.name} ({self.network.latency_ms:g} ms, "
            f"{self.network.down_kbit:g} kbit/s) | {self.median:.2f} s | {loads} | {kib:.1f} KiB | {requests:g} | "
            f"≤ {self.network.target_s:g} s: {verdict} |"
        )


HEADER = (
    "| configuration | network | ready, median | every load (s) | transferred | requests | target |\n"
    "|---|---|---|---|---|---|---|"
)


@contextmanager
def app(workdir: Path, *, debug: bool) -> Iterator[str]:
    """The app under Daphne, as shoppers get it (``debug`` False) or as a developer runs it; yields its URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
            "DATABASE_URL": f"sqlite:///{workdir / ('debug' if debug else 'prod')}.sqlite3",
            "DJANGO_DEBUG": "1" if debug else "0",
            "DJANGO_SECRET_KEY": "bench-only-" + uuid.uuid4().hex,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_HSTS_SECONDS": "0",
            "DJANGO_STATIC_ROOT": str(workdir / "static"),
            "VIZOCHOK_WS_URL": "",
            "VIZOCHOK_LOG_LEVEL": "WARNING",
        }
    )
    py = sys.executable
    steps = [["migrate", "--noinput"]]
    if not debug:
        steps.append(["collectstatic", "--noinput", "-v", "0"])
    for step in steps:
        subprocess.run([py, "manage.py", *step], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    name = "daphne-debug" if debug else "daphne"
    child = Child(
        name,
        [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vizochok_site.asgi:application"],
        env,
        workdir,
        url=False,
    )
    try:
        _wait_for_port(port, child)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def _chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    return found


def load_once(browser: Any, url: str, network: Network) -> Load:
    """One cold load: a fresh context (empty cache, no cookies), throttled from the first byte."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="uk-UA")
    try:
        page = context.new_page()
        page.add_init_script(_READY_PROBE)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        cdp.send("Network.emulateNetworkConditions", network.conditions())
        sizes: dict[str, int] = {}
        requests: set[str] = set()
        errors: list[str] = []
        cdp.on("Network.requestWillBeSent", lambda e: requests.add(e["requestId"]))
        cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/?lang=uk", wait_until="commit")
        page.wait_for_function("() => window.__benchReady !== undefined", timeout=60_000)
        ready = float(page.evaluate("() => window.__benchReady")) / 1000
        # Whatever the page asks for after ready (late images, the favicon) still counts as its weight.
        page.wait_for_load_state("load")
        page.wait_for_timeout(200)  # no event marks "nothing more will be requested"; bounded and small
        return Load(ready, sum(sizes.values()), len(requests), errors)
    finally:
        context.close()


def run(loads: int, *, configs: tuple[str, ...] = ("production", "development")) -> list[Result]:
    from playwright.sync_api import sync_playwright

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            for config in configs:
                with app(Path(tmp), debug=config == "development") as url:
                    load_once(browser, url, NETWORKS[0])  # warm the server (templates, imports), not the browser
                    for network in NETWORKS:
                        measured = [load_once(browser, url, network) for _ in range(loads)]
                        results.append(Result(config, network, measured))
        finally:
            browser.close()
    return results
