"""The README's production block, run as written behind a proxy, counts the address the proxy saw (issue 24, item 2).

The block is read from README.md itself: its ``export`` line and its first ``daphne`` command line. Only what
cannot exist here is replaced (the database and Redis hosts, the placeholder secret key, the port); everything
else, the flags and every other setting, runs exactly as documented. The proxy is played by the test: it appends
the address it saw to ``X-Forwarded-For`` and says the visit came over HTTPS, as the README asks of it.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, Daphne, wait_for_port

HOST = "chat.example.com"
#: The address our proxy saw and appended; the client's own entries are written to its left.
PROXY_SAW = "203.0.113.7"
#: Settings the README names hosts or placeholders for that do not exist here, and what stands in for them.
REPLACED = {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}


def production_block() -> tuple[dict[str, str], list[str]]:
    """The README's production ``export`` settings and its first ``daphne`` command, as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Production", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    export = next(line for line in lines if line.startswith("export "))
    settings = dict(word.split("=", 1) for word in shlex.split(export)[1:])
    daphne = next(shlex.split(line) for line in lines if line.startswith(".venv/bin/daphne "))
    return settings, daphne


class DocumentedDaphne(Daphne):
    """Daphne started with the README's own command line (its port replaced by a free one)."""

    def __init__(self, tmp: Path, settings: dict[str, str], command: list[str]) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("VIZOCHOK_")}
        env.pop("REDIS_URL", None)  # no host "redis" here: the cache is this process's own memory
        env.update({key: value for key, value in settings.items() if key not in REPLACED})
        env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'db.sqlite3'}"  # no host "db" here
        env["DJANGO_SETTINGS_MODULE"] = "vizochok_site.settings"
        super().__init__("the documented app", tmp / "server.log", env)
        self.command = [sys.executable, "-m", "daphne", *command[1:]]
        self.command[self.command.index("-p") + 1] = str(self.port)

    def launch(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.process, 30, describe=self.name)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    def admin_login(self, forwarded_for: str, password: str) -> int:
        """A wrong or right admin password through the proxy; the status. The CSRF pair is the client's own."""
        csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret, in the cookie and the form
        body = f"csrfmiddlewaretoken={csrf}&username=documented-admin&password={password}&next=/admin/"
        headers = {
            "Host": HOST,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": forwarded_for,
            "Origin": f"https://{HOST}",
            "Referer": f"https://{HOST}/admin/login/",
            "Cookie": f"csrftoken={csrf}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request("POST", "/admin/login/", body=body, headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()


def test_the_readme_replaces_only_what_cannot_exist_here() -> None:
    settings, command = production_block()
    assert set(settings) >= REPLACED
    assert command[0] == ".venv/bin/daphne" and "-p" in command and command[-1] == "vizochok_site.asgi:application"


def test_the_documented_production_setup_counts_the_address_the_proxy_saw(tmp_path: Path) -> None:
    settings, command = production_block()
    app = DocumentedDaphne(tmp_path, settings, command)
    app.migrate()
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "documented-admin"],
        cwd=ROOT,
        env={
            **app.env,
            "DJANGO_SUPERUSER_PASSWORD": "the right admin password 24",
            "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        },
        check=True,
        capture_output=True,
    )
    app.launch()
    try:
        limit = 5  # VIZOCHOK_ADMIN_LOGIN_FAILURES' default: the block does not set it
        # Each guess names another address of its own; the proxy appends the one it saw. (The wrong guesses' form
        # is a 500 here: the block's collectstatic is not run, so the login page has no static files manifest.)
        answers = [app.admin_login(f"198.51.100.{n}, {PROXY_SAW}", f"wrong guess {n}") for n in range(limit + 2)]
        assert 429 not in answers[: limit - 1] and answers[limit - 1 :] == [429] * 3, answers  # locked at the 5th
        assert app.admin_login(f"198.51.100.99, {PROXY_SAW}", "the right admin password 24") == 429  # still locked
        # Another address behind the same proxy is not locked out.
        assert app.admin_login("198.51.100.200, 203.0.113.8", "the right admin password 24") == 302
    finally:
        app.stop()


def test_daphne_with_proxy_headers_and_no_trusted_hop_refuses_to_start(tmp_path: Path) -> None:
    """The misconfiguration the README had (``--proxy-headers``, no hops) is caught, not served."""
    settings, command = production_block()
    settings = {**settings, "VIZOCHOK_TRUSTED_PROXY_HOPS": "0"}
    app = DocumentedDaphne(tmp_path, settings, [command[0], "--proxy-headers", *command[1:]])
    with pytest.raises(RuntimeError, match="exited"):
        app.launch()
    assert re.search(r"--proxy-headers with VIZOCHOK_TRUSTED_PROXY_HOPS=0", app.log())


def test_the_documented_settings_pass_the_deploy_check_as_the_block_runs_it(tmp_path: Path) -> None:
    settings, command = production_block()
    app = DocumentedDaphne(tmp_path, settings, command)
    check = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = subprocess.run(check, cwd=ROOT, env=app.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
