"""Production-shaped fixtures: app processes (Daphne) sharing PostgreSQL and Redis, an upstream sandbox in a thread.

Everything runs on loopback with real sockets. The sandbox runs in its own thread and event loop so that the app
processes (started once per module) and each test's own loop can all talk to it; tests drive it (pause turns,
count sockets) through ``Upstream.call``. Browser tabs are plain WebSocket clients carrying the session cookie a
real page load set, so a "tab" can move from one process to another the way a reverse proxy would move it.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import threading
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import connect

from chat.sandbox.server import SandboxConfig, SandboxServer
from tests.processes import (
    POSTGRES_TEMPLATE,
    SHARED_DIR,
    Daphne,
    made_once,
    migrate_command,
    port_open,
    redis_url,
)
from tests.tabs import MAX_QUEUE, Tab

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = redis_url()
TIMEOUT = 15.0
READY = 'data-state="ready"'

T = TypeVar("T")


def postgres_or_skip() -> None:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")


def redis_or_skip() -> None:
    if not port_open("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")


# --- the upstream ------------------------------------------------------------------------------------------------


class Upstream:
    """A sandbox serving from its own thread; ``call`` runs a coroutine or function on that thread's loop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SandboxServer(config)
        self.thread = threading.Thread(target=self.loop.run_forever, name="sandbox", daemon=True)

    def start(self) -> Upstream:
        self.thread.start()
        self.call(self.server.start("127.0.0.1", 0))
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, work: Coroutine[Any, Any, T] | Any) -> Any:
        if asyncio.iscoroutine(work):
            return asyncio.run_coroutine_threadsafe(work, self.loop).result(TIMEOUT)

        async def run() -> Any:
            return work()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)

    async def acall(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def pause(self) -> None:
        self.call(self.server.pause_turns)

    def resume(self) -> None:
        self.call(self.server.resume_turns)

    def stop(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


# --- the database --------------------------------------------------------------------------------------------


class Database:
    """A throwaway PostgreSQL database for one module's app processes; ``template`` names a migrated database to
    copy (``CREATE DATABASE … TEMPLATE``: a file copy on the server, where ``migrate`` takes seconds)."""

    def __init__(self, prefix: str = "vizochok_prod", *, name: str = "") -> None:
        self.name = name or f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.url = f"postgresql://postgres@127.0.0.1:5432/{self.name}"

    def create(self, template: Database | None = None) -> Database:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            copy = f' TEMPLATE "{template.name}"' if template else ""
            admin.execute(f'CREATE DATABASE "{self.name}"{copy}')
        return self

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            return list(conn.execute(sql, params).fetchall())


# --- app processes -------------------------------------------------------------------------------------------


class App(Daphne):
    """One app process of a production-shaped deployment; its log is ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str]) -> None:
        super().__init__(name, log_dir / f"{name}.log", env)

    def start(self) -> App:
        self.launch()
        return self


def app_env(database: Database, upstream: Upstream, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database.url,
        "REDIS_URL": REDIS_URL,
        "VIZOCHOK_WS_URL": upstream.url,
        # A key of its own, so the shared slot counter in Redis belongs to this test run only.
        "VIZOCHOK_API_KEY": f"sk_test_{uuid.uuid4().hex}",
        "VIZOCHOK_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


# --- shoppers and tabs ---------------------------------------------------------------------------------------


class Shopper:
    """A visitor whose page load on ``app`` set the session cookie and chose the conversation."""

    def __init__(self, cookie: str, ws_path: str, public_id: str) -> None:
        self.cookie = cookie
        self.ws_path = ws_path
        self.public_id = public_id

    @classmethod
    async def visit(cls, app: App) -> Shopper:
        def load() -> Shopper:
            with urllib.request.urlopen(f"{app.url}/?lang=en", timeout=TIMEOUT) as response:
                page = response.read().decode()
                cookies = [value.split(";")[0] for value in response.headers.get_all("Set-Cookie") or []]
            ws_path = html.unescape(re.search(r'ws-connect="([^"]+)"', page).group(1))  # type: ignore[union-attr]
            public_id = re.search(r"c=([0-9a-f-]{36})", ws_path).group(1)  # type: ignore[union-attr]
            # The anonymous shopper's identity is the signed visitor cookie (a page view writes no session row).
            wanted = ("sessionid=", "vizochok_visitor=")
            return cls("; ".join(c for c in cookies if c.startswith(wanted)), ws_path, public_id)

        return await asyncio.to_thread(load)

    async def open(self, app: App) -> Tab:
        ws = await connect(
            f"ws://127.0.0.1:{app.port}{self.ws_path}",
            origin=app.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": self.cookie},
            open_timeout=TIMEOUT,
            max_queue=MAX_QUEUE,
        )
        return Tab(ws, TIMEOUT)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    running = Upstream(SandboxConfig(tokens_per_second=200.0, ping_interval=0.0)).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[Database]:
    """One migrated PostgreSQL database per test run, copied for each module.

    The xdist workers share it as they share the SQLite template (tests/processes.py): the first to need it migrates
    under a file lock in the run's shared folder and writes its name there; the run drops it at its end
    (``drop_shared_postgres``). Without a shared folder the process makes its own and drops it itself.
    """
    postgres_or_skip()
    shared = os.environ.get(SHARED_DIR)
    if not shared:
        own = Database("vizochok_template").create()
        try:
            migrate_postgres(own)
            yield own
        finally:
            own.drop()
        return

    def make(building: Path) -> None:
        template = Database("vizochok_template").create()
        try:
            migrate_postgres(template)
        except BaseException:
            template.drop()
            raise
        building.write_text(template.name)

    yield Database(name=made_once(POSTGRES_TEMPLATE, make).read_text())


def migrate_postgres(template: Database) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vizochok_site.settings", "DATABASE_URL": template.url}
    env.pop("REDIS_URL", None)
    migrate_command(env)


@pytest.fixture(scope="module")
def database(migrated_template: Database) -> Iterator[Database]:
    """A migrated database of this module's own."""
    created = Database().create(template=migrated_template)
    yield created
    created.drop()
