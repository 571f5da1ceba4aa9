"""Admin exports stream under Daphne (issue 25): the first bytes go out before the rows are read, with no warning.

The test holds an exclusive lock on the message table, so the app process cannot read a single message row while
the test waits for the response to begin: the export's first chunk arrives anyway, and the rest (every message)
once the lock is released. The old export (a synchronous iterator, which Django under ASGI reads to its end in a
thread before sending anything, logging "StreamingHttpResponse must consume synchronous iterators") sent nothing
until then.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat.management.commands._bench_exports import StaffSession
from tests.processes import ROOT
from tests.production.conftest import App, Database, Upstream, app_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PASSWORD = "export-pass-2026"


@pytest.fixture(scope="module")
def export_app(tmp_path_factory: pytest.TempPathFactory, database: Database, upstream: Upstream) -> Iterator[App]:
    env = app_env(database, upstream, VIZOCHOK_LOG_FORMAT="plain")
    for command in (
        ["seed_demo_conversations", "--conversations", "120", "--messages", "1200", "--days", "3"],
        ["createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.test"],
    ):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            check=True,
            capture_output=True,
        )
    app = App("exports", tmp_path_factory.mktemp("exports"), env).start()
    yield app
    app.stop()


class Browser(StaffSession):
    """The export benchmark's staff client, logged in as this module's superuser."""

    def __init__(self, app: App) -> None:
        super().__init__(app.port, timeout=15)

    def log_in(self) -> None:
        token = self.token("/admin/login/")
        body = f"csrfmiddlewaretoken={token}&username=staff&password={PASSWORD}&next=/admin/"
        assert self.request("POST", "/admin/login/", body).status == 302


def lock_messages(database: Database) -> Any:
    import psycopg

    holder = psycopg.connect(database.url)
    holder.execute("LOCK TABLE chat_message IN ACCESS EXCLUSIVE MODE")  # held until rollback
    return holder


@pytest.mark.parametrize("action", ["export_csv", "export_json"])
def test_an_export_starts_before_its_rows_are_read(export_app: App, database: Database, action: str) -> None:
    staff = Browser(export_app)
    staff.log_in()
    path = "/admin/chat/conversation/?turns=all"
    token = staff.token(path)
    [(some_id,)] = database.rows("SELECT id FROM chat_conversation ORDER BY id LIMIT 1")
    body = f"csrfmiddlewaretoken={token}&action={action}&select_across=1&index=0&_selected_action={some_id}"
    holder = lock_messages(database)
    try:
        response = staff.request("POST", path, body)  # headers and the first chunk come with the table locked
        assert response.status == 200, response.read()[:500]
        first = response.read1(65536).decode()
        assert first.startswith("conversation_public_id," if action == "export_csv" else "[")
    finally:
        holder.rollback()
        holder.close()
    text = first + response.read().decode()
    [(messages,)] = database.rows("SELECT COUNT(*) FROM chat_message")
    if action == "export_csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) - 1 >= messages and messages > 1000
    else:
        import json

        exported = json.loads(text)
        assert sum(len(one["messages"]) for one in exported) == messages
    assert "must consume synchronous iterators" not in Path(export_app.log_path).read_text()
