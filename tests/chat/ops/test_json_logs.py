"""``VIZOCHOK_LOG_FORMAT=json`` under a real Daphne process: every line it writes is one JSON object.

Django's request warnings, Daphne's own messages and its access log, Twisted's log and the app's logs all pass
through different machinery; a log shipper reading the process's output must not meet a single plain-text line.
Both debug modes are run because Django routes its warnings differently in each (its own console handler with
DEBUG on, the root logger with DEBUG off).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.processes import Daphne

#: An entry token as a host's link carries it; its signature (and its payload) must reach no log line.
ENTRY_TOKEN = "eyJ1c2VyX2lkIjoiaG9zdC1zaG9wcGVyIn0.SIGNATUREc2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def _status(url: str, data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(url, data=data, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module", params=["1", "0"], ids=["debug", "production"])
def served_log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A Daphne run that served a page, a 404, a CSRF refusal and a refused socket, then shut down: its lines."""
    debug = request.param == "1"
    tmp = tmp_path_factory.mktemp("json-logs")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "DJANGO_DEBUG": request.param,
        "DJANGO_SECRET_KEY": "test-json-logs",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "VIZOCHOK_WS_URL": "",
        "VIZOCHOK_LOG_FORMAT": "json",
    }
    env.pop("REDIS_URL", None)
    server = Daphne("the app server", tmp / "server.log", env)
    server.migrate()
    server.launch()
    try:
        # Without DEBUG the chat page needs collected static files; the health probe is a page all the same.
        assert _status(server.url + ("/?lang=en" if debug else "/healthz")) == 200
        assert _status(server.url + "/no-such-page/") == 404
        assert _status(server.url + "/admin/login/", data=b"username=x") == 403  # no CSRF cookie
        _status(f"{server.url}/?token={ENTRY_TOKEN}&lang=en")  # refused (no secret here): its 403 is logged
        _status(f"{server.url}/admin/?token={ENTRY_TOKEN}")  # redirected to the login with the token in next=
        ws_url = server.url.replace("http", "ws") + "/ws/chat/?c=nobody"
        with pytest.raises(InvalidStatus), connect(ws_url, origin=Origin("http://evil.example"), open_timeout=15):
            pass
    finally:
        assert server.terminate() == 0
    return Path(server.log_path).read_text().splitlines()


def test_every_line_is_one_json_object(served_log: list[str]) -> None:
    assert served_log
    for line in served_log:
        entry = json.loads(line)  # a plain-text line fails here, and shows itself
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message"} <= entry.keys()


def _entries(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_djangos_daphnes_and_the_apps_messages_are_all_there(served_log: list[str]) -> None:
    messages = {(entry["logger"], entry["message"]) for entry in _entries(served_log)}
    assert ("django.request", "Not Found: /no-such-page/") in messages
    assert ("django.security.csrf", "Forbidden (CSRF cookie not set.): /admin/login/") in messages
    assert any(logger == "daphne.server" and text.startswith("Listening on TCP") for logger, text in messages)
    assert any(logger == "chat.web.lifecycle" for logger, _ in messages)  # the app's own, at shutdown
    # Twisted's own log (autobahn refusing the handshake), which Daphne would otherwise drop or print as text.
    assert any(logger == "twisted" and "Access denied" in text for logger, text in messages)


def test_the_access_log_is_json_with_its_fields(served_log: list[str]) -> None:
    access = [entry for entry in _entries(served_log) if entry["logger"] == "daphne.access"]
    requests = {(entry["request"], entry["status"]) for entry in access}
    assert ("GET /no-such-page/", 404) in requests
    assert ("POST /admin/login/", 403) in requests
    assert ("WSREJECT /ws/chat/", None) in requests
    assert all(entry["client"].startswith("127.0.0.1:") for entry in access)


def test_no_line_carries_an_entry_token(served_log: list[str]) -> None:
    """Issue 24, item 5: the token, signature included, was whole in the access log and in Django's 403 warning."""
    text = "\n".join(served_log)
    assert "SIGNATURE" not in text and "eyJ1c2VyX2lkIjoiaG9zdC1zaG9wcGVyIn0" not in text
    assert "token=[redacted]" in text
