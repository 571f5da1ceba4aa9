"""The export phase of ``manage.py bench_insights --export`` (issue 25): the admin's streamed exports under Daphne.

A Daphne process is started on this database, a temporary superuser logs in over HTTP and asks the conversation
list's export action for every conversation; the response is read as it comes while another thread samples the
process's resident memory. Measured: seconds to the first byte and to the last, bytes, and the growth of the
process (peak during the export over its size just before, after a warm-up request).
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

FIRST_BYTE_BUDGET = 1.0
GROWTH_BUDGET_MIB = 50.0
USER = "bench-exports"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StaffSession:
    """A staff member's cookies and CSRF token over plain HTTP, so an export's body can be read piece by piece
    (also the streaming test's client)."""

    def __init__(self, port: int, timeout: float = 600) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str = "") -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), "Host": "127.0.0.1"}
        if body:
            headers |= {
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://127.0.0.1:{self.port}/",
            }
        connection.request(method, path, body=body.encode(), headers=headers)
        response = connection.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response

    def token(self, path: str) -> str:
        page = self.request("GET", path).read().decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not found:
            raise RuntimeError(f"no form on {path}")
        return found.group(1)


def measure(fmt: str) -> dict[str, Any]:
    import psutil

    password = secrets.token_urlsafe(16)
    user, _ = User.objects.get_or_create(username=USER, defaults={"is_staff": True, "is_superuser": True})
    user.set_password(password)
    user.save()
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vizochok_site.settings"}
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or f"sqlite:///{settings.DATABASES['default']['NAME']}"
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1"
    env["DJANGO_DEBUG"] = "1"  # plain HTTP on loopback; the code path of an export does not depend on it
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vizochok_site.asgi:application"]
    log = open(os.devnull, "wb")  # noqa: SIM115  # closed below, after the process
    daphne = subprocess.Popen(command, cwd=Path(settings.BASE_DIR), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or daphne.poll() is not None:
                    raise RuntimeError("daphne did not start") from None
                time.sleep(0.1)
        staff = StaffSession(port)
        token = staff.token("/admin/login/")
        login = f"csrfmiddlewaretoken={token}&username={USER}&password={password}&next=/admin/"
        if staff.request("POST", "/admin/login/", login).status != 302:
            raise RuntimeError("could not log in")
        path = "/admin/chat/conversation/?turns=all"
        token = staff.token(path)  # also the warm-up: the admin's modules and templates are loaded now
        from chat.models import Conversation

        some = Conversation.objects.values_list("pk", flat=True).first() or 0
        action = f"csrfmiddlewaretoken={token}&action=export_{fmt}&select_across=1&index=0&_selected_action={some}"
        process = psutil.Process(daphne.pid)
        before = process.memory_info().rss
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        began = time.perf_counter()
        response = staff.request("POST", path, action)
        first = response.read1(65536)
        first_byte = time.perf_counter() - began
        size = len(first)
        while chunk := response.read1(1 << 20):
            size += len(chunk)
        whole = time.perf_counter() - began
        done.set()
        sampler.join()
        return {
            "name": f"export {fmt.upper()}, every conversation",
            "status": response.status,
            "first_byte_s": round(first_byte, 3),
            "whole_s": round(whole, 2),
            "mib": round(size / 2**20, 1),
            "growth_mib": round((peak[0] - before) / 2**20, 1),
        }
    finally:
        daphne.terminate()
        try:
            daphne.wait(15)
        except subprocess.TimeoutExpired:
            daphne.kill()
        log.close()
        user.delete()


def report(results: list[dict[str, Any]], write: Callable[[str], Any]) -> bool:
    """Print the export phase; whether every export met its budgets."""
    write(f"{'export':40} {'1st byte':>9} {'whole':>8} {'size':>9} {'growth':>9}")
    ok = True
    for r in results:
        good = r["status"] == 200 and r["first_byte_s"] <= FIRST_BYTE_BUDGET and r["growth_mib"] < GROWTH_BUDGET_MIB
        ok = ok and good
        write(
            f"{r['name']:40} {r['first_byte_s'] * 1000:7.0f}ms {r['whole_s']:7.1f}s {r['mib']:6.1f}MiB "
            f"{r['growth_mib']:6.1f}MiB  {'ok' if good else 'OVER BUDGET'}"
        )
    return ok
