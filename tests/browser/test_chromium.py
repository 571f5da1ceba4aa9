"""The browser the suite launches (tests/browser/conftest.py): the switches it is given do what they are for."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM_ARGS, PLAYWRIGHT_DISABLED_FEATURES, UNUSED_BROWSER_UI

FEATURES = "--disable-features="


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while the folder was read
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _browser_command_line() -> list[str]:
    """The command line of this process's Chromium browser process (not a renderer, a GPU or a utility one)."""
    for pid in _descendants(os.getpid()):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if (
            "chromium" in arguments[0]
            and "--remote-debugging-pipe" in arguments
            and not any(argument.startswith("--type=") for argument in arguments)
        ):
            return arguments
    raise AssertionError("no Chromium browser process under this one")


def test_the_last_disabled_features_switch_keeps_playwrights_own(browser: Any) -> None:
    """Chromium keeps only the last ``--disable-features``: ours must hold every name Playwright's does, or a
    Playwright upgrade would silently turn its own list off."""
    switches = [
        argument.removeprefix(FEATURES) for argument in _browser_command_line() if argument.startswith(FEATURES)
    ]
    assert len(switches) >= 2, switches  # Playwright's, then ours
    effective = set(switches[-1].split(","))
    for earlier in switches[:-1]:
        assert set(earlier.split(",")) <= effective, set(earlier.split(",")) - effective
    assert set(PLAYWRIGHT_DISABLED_FEATURES) | set(UNUSED_BROWSER_UI) == effective


def test_a_context_gets_no_omnibox_popup_renderers(browser: Any) -> None:
    """In the full browser, which has an omnibox (the headless shell the suite prefers has none): it runs the suite
    where the shell is not installed, and its switches are the same."""
    full = shutil.which("chromium")
    if full is None:
        pytest.skip("Debian's full chromium is not installed (apt-get install chromium); .ci/run installs it")
    launched = browser.browser_type.launch(executable_path=full, args=CHROMIUM_ARGS)
    try:
        _assert_no_omnibox_popups(launched)
    finally:
        launched.close()


def _assert_no_omnibox_popups(browser: Any) -> None:
    context = browser.new_context()
    try:
        context.new_page().set_content("<p>hello</p>")
        session = browser.new_browser_cdp_session()
        try:
            targets = session.send("Target.getTargets")["targetInfos"]
        finally:
            session.detach()
        assert [target["url"] for target in targets if target["type"] == "browser_ui"] == []
        assert [target["type"] for target in targets].count("page") == 1
    finally:
        context.close()
