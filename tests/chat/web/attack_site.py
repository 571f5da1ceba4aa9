"""A real app process for the attack regressions (issue 15): Daphne with its own SQLite file and the sandbox.

The attacks go over real sockets exactly as a hostile browser or crawler would send them: raw HTTP requests with
whatever headers the attacker likes, WebSocket clients that send crafted frames or never read.
"""

from __future__ import annotations

import html
import http.client
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import connect

from tests.processes import ROOT, Daphne
from tests.tabs import MAX_QUEUE, Tab

TIMEOUT = 10.0
READY = 'data-state="ready"'


class Site(Daphne):
    """The app as the README runs it in production (Daphne without ``--proxy-headers``; the hops are the test's
    setting) with small caps, on its own SQLite file."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.db = tmp / "db.sqlite3"
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
            "DATABASE_URL": f"sqlite:///{self.db}",
            "DJANGO_DEBUG": "1",
            "VIZOCHOK_WS_URL": "",
            "VIZOCHOK_SANDBOX_PACE": "0",
            "VIZOCHOK_IDLE_GRACE": "1",
            **env,
        }
        full_env.pop("REDIS_URL", None)
        super().__init__("the attacked app", tmp / "server.log", full_env)

    def start(self) -> Site:
        self.migrate()
        self.launch()
        return self

    def add_admin(self, username: str, password: str) -> None:
        command = [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", username]
        env = {**self.env, "DJANGO_SUPERUSER_PASSWORD": password, "DJANGO_SUPERUSER_EMAIL": f"{username}@example.com"}
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: str | None = None
    ) -> Response:
        """One HTTP request, redirects not followed (an attacker's client sees exactly what the server says)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=body, headers={"Host": f"127.0.0.1:{self.port}", **(headers or {})})
            reply = connection.getresponse()
            return Response(reply.status, reply.getheaders(), reply.read().decode("utf-8", "replace"))
        finally:
            connection.close()

    def metric(self, name: str) -> float:
        page = self.request("GET", "/metrics").body
        match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", page, re.M)
        return float(match.group(1)) if match else 0.0

    def admin_login(self, visitor: Visitor, username: str, password: str) -> Response:
        """Sign in on the admin's form as a browser would: load it (CSRF cookie and token), then post it."""
        form = visitor.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.body).group(1)  # type: ignore[union-attr]
        fields = {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
        return visitor.post("/admin/login/", fields)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")

    @property
    def set_cookies(self) -> list[str]:
        return [value for key, value in self.headers if key.lower() == "set-cookie"]

    def cookies(self) -> dict[str, str]:
        # Only the name=value pair: SimpleCookie drops a whole line with an attribute it does not know (Partitioned).
        jar: dict[str, str] = {}
        for line in self.set_cookies:
            name, _, value = line.split(";", 1)[0].partition("=")
            jar[name.strip()] = value.strip().strip('"')
        return jar


@dataclass
class Visitor:
    """A browser that loaded the chat page: its cookies and the socket path the page names."""

    site: Site
    cookies: dict[str, str] = field(default_factory=dict)
    ws_path: str = ""
    #: Sent with every HTTP request (e.g. the X-Forwarded-For our proxy would add).
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def arrive(cls, site: Site, path: str = "/?lang=en") -> Visitor:
        visitor = cls(site)
        visitor.load(path)
        return visitor

    def load(self, path: str = "/?lang=en") -> Response:
        response = self.get(path)
        self.cookies.update(response.cookies())
        found = re.search(r'ws-connect="([^"]+)"', response.body)
        if found:
            self.ws_path = html.unescape(found.group(1))
        return response

    def get(self, path: str, **headers: str) -> Response:
        response = self.site.request("GET", path, headers={**self.headers, **self.cookie_header(), **headers})
        self.cookies.update(response.cookies())
        return response

    def post(self, path: str, fields: dict[str, Any]) -> Response:
        headers = {
            **self.headers,
            **self.cookie_header(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"{self.site.url}{path}",
            "Origin": self.site.url,
        }
        response = self.site.request("POST", path, headers=headers, body=urlencode(fields, doseq=True))
        self.cookies.update(response.cookies())
        return response

    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    @property
    def public_id(self) -> str:
        return re.search(r"c=([0-9a-f-]{36})", self.ws_path).group(1)  # type: ignore[union-attr]

    async def socket(self, *, path: str | None = None, forwarded_for: str | None = None, **options: Any) -> Tab:
        headers = dict(self.cookie_header())
        if forwarded_for is not None:
            headers["X-Forwarded-For"] = forwarded_for
        options.setdefault("origin", self.site.url)
        options.setdefault("max_queue", MAX_QUEUE)
        ws = await connect(
            f"ws://127.0.0.1:{self.site.port}{path or self.ws_path}",
            additional_headers=headers,
            open_timeout=TIMEOUT,
            **options,
        )
        return Tab(ws, TIMEOUT)
