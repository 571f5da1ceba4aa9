"""A brief PostgreSQL outage mid-reply: the relay's writes wait it out, and a send during it is refused clearly."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.production.conftest import PG_ADMIN, READY, App, Database, Shopper, Upstream, app_env

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def app(database: Database, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    # Redis plays no part here: the in-memory channel layer keeps this about the database alone.
    env = app_env(database, upstream, REDIS_URL="", VIZOCHOK_IDLE_GRACE="30")
    running = App("db-outage", tmp_path_factory.mktemp("outage"), env).start()
    yield running
    running.stop()


def database_available(database: Database, available: bool) -> None:
    """Refuse new connections and cut the existing ones, as a failover or a restart does; or let them in again."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS {str(available).lower()}')
        if not available:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database.name,),
            )


async def logged(app: App, *needles: str, timeout: float = 20.0, since: int = 0) -> None:
    """Wait until the app logs one of ``needles`` (past the log's first ``since`` characters: what an earlier outage
    in this module logged does not count); a log file has no event to await, so poll it within a deadline."""
    deadline = time.monotonic() + timeout
    while not any(needle in app.log()[since:] for needle in needles):
        assert time.monotonic() < deadline, f"{needles!r} never logged:\n{app.log()[-2000:]}"
        await asyncio.sleep(0.05)


async def test_a_brief_outage_mid_reply_loses_nothing(app: App, database: Database, upstream: Upstream) -> None:
    shopper = await Shopper.visit(app)
    tab = await shopper.open(app)
    try:
        await tab.send(kind="message", text="milk", key="outage-1")
        await tab.until(READY)
        upstream.pause()
        await tab.send(kind="message", text="borscht", key="outage-2")
        await tab.until("-text")  # mid-reply
        database_available(database, False)
        try:
            upstream.resume()
            # The turn's writes wait out the outage: the shopper's message (stored while the send went upstream)
            # first, then the reply.
            await logged(app, "retrying store_sent", "retrying save_assistant_text")
        finally:
            database_available(database, True)
        html = await tab.until(READY, timeout=30)
        assert "checklist" in html
        assert "chat-error" not in html

        database_available(database, False)
        try:
            await tab.send(kind="message", text="bread", key="outage-3")
            refused = await tab.until("chat-error", timeout=30)
        finally:
            database_available(database, True)
        assert 'data-code="service_unavailable"' in refused
        await tab.send(kind="message", text="bread", key="outage-4")
        assert "product-card" in await tab.until(READY, timeout=30)
    finally:
        await tab.close()

    rows = database.rows(
        "SELECT m.role, m.kind, m.text, m.complete FROM chat_message m"
        " JOIN chat_conversation c ON c.id = m.conversation_id WHERE c.public_id = %s ORDER BY m.seq",
        shopper.public_id,
    )
    users = [text for role, _kind, text, _complete in rows if role == "user"]
    assert users == ["milk", "borscht", "bread"]
    assert all(complete for _role, _kind, _text, complete in rows)
    assert "checklist" in [kind for _role, kind, _text, _complete in rows]
    assert "error" not in [kind for _role, kind, _text, _complete in rows]


def page_status(app: App) -> int:
    """One page load's status (a page load takes a database connection in a thread of its own)."""
    try:
        with urllib.request.urlopen(f"{app.url}/?lang=en", timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def test_the_first_page_load_after_an_outage_is_served(app: App, database: Database) -> None:
    """psycopg_pool backs off its reconnection for up to its reconnect_timeout (5 minutes unless set): a database
    back after 16 s would get its first connection from the pool at about 31 s. Given up after 2 s (settings.py),
    the next caller connects afresh."""
    assert await asyncio.to_thread(page_status, app) == 200
    since = len(app.log())
    database_available(database, False)
    try:
        await asyncio.to_thread(page_status, app)  # finds the pool's connections cut; the pool tries to replace them
        await logged(app, "failed after 2", timeout=15, since=since)  # ... and gives up trying after 2 s
    finally:
        database_available(database, True)
    assert await asyncio.to_thread(page_status, app) == 200
