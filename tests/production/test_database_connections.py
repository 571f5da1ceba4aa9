"""The app's PostgreSQL connections outlive a database trip and a page load (Django's pool, settings.py).

Without it channels closed the database thread's connection after every trip (CONN_MAX_AGE 0) and every page load
ran in a thread of its own with a connection of its own: each opened a PostgreSQL backend (3.8 ms on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.production.conftest import PG_ADMIN, READY, App, Database, Shopper, Upstream, app_env

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def app(database: Database, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    env = app_env(database, upstream, REDIS_URL="")
    running = App("db-connections", tmp_path_factory.mktemp("connections"), env).start()
    yield running
    running.stop()


def backends(database: Database) -> tuple[dict[int, datetime], datetime]:
    """The app's open connections (backend pid → when it started) and the server's clock now."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
            (database.name,),
        ).fetchall()
        now = admin.execute("SELECT clock_timestamp()").fetchone()
    assert now is not None
    return {pid: started for pid, started in rows}, now[0]


async def test_page_loads_and_turns_reuse_the_apps_connections(app: App, database: Database) -> None:
    shopper = await Shopper.visit(app)
    tab = await shopper.open(app)
    try:
        await tab.send(kind="message", text="milk", key="pool-0")
        await tab.until(READY)
        before, began = backends(database)
        for n in range(8):
            await Shopper.visit(app)
            await tab.send(kind="message", text="bread", key=f"pool-{n + 1}")
            await tab.until(READY)
    finally:
        await tab.close()
    after, _ = backends(database)
    # Kept open between the trips and the page loads, and serving them: no backend per trip or per page.
    assert set(before) & set(after), (before, after)
    opened = [pid for pid, started in after.items() if started >= began]
    assert len(opened) <= 2, after
    assert len(after) <= 20  # DATABASE_POOL_MAX_SIZE
