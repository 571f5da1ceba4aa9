"""Two Daphne processes sharing PostgreSQL and Redis: tabs in sync, one upstream limit, a crash loses nothing.

The processes are started once for the module (about two seconds each) and the crash test kills one of them, so
it runs last. Upstream turns are paused at the sandbox to hold a turn mid-reply deterministically.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.production.conftest import (
    READY,
    App,
    Database,
    Shopper,
    Upstream,
    app_env,
    redis_or_skip,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def apps(database: Database, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, App]]:
    redis_or_skip()
    env = app_env(
        database,
        upstream,
        VIZOCHOK_MAX_CONNECTIONS="1",  # one upstream socket for the whole deployment: the limit under test
        VIZOCHOK_IDLE_GRACE="0.2",
        VIZOCHOK_SLOT_TTL="2",  # a killed process's slot comes back within 2 s
        VIZOCHOK_HEARTBEAT_SECONDS="0.3",  # a killed process's turn is stale within 0.9 s
        VIZOCHOK_QUEUE_TIMEOUT="20",
        VIZOCHOK_MAX_SOCKETS_PER_SESSION="3",
    )
    logs = tmp_path_factory.mktemp("apps")
    first, second = App("a", logs, env), App("b", logs, env)
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


async def test_two_tabs_on_different_processes_stay_in_sync(apps: tuple[App, App]) -> None:
    a, b = apps
    shopper = await Shopper.visit(a)
    on_a, on_b = await shopper.open(a), await shopper.open(b)
    try:
        await on_a.send(kind="message", text="milk", key="sync-1")
        seen_on_b = await on_b.until(READY)
        assert 'data-role="user"' in seen_on_b and "milk" in seen_on_b
        assert 'data-role="assistant"' in seen_on_b and "product-card" in seen_on_b
        own = await on_a.until(READY)

        await on_b.send(kind="message", text="bread", key="sync-2")
        seen_on_a = await on_a.until(READY)
        assert "bread" in seen_on_a and 'data-role="assistant"' in seen_on_a
        await on_b.until(READY)
        # The sending process hands its tab each fragment directly and skips its own copy from Redis: once each.
        assert (own + seen_on_a).count('data-role="user"') == 2
    finally:
        await on_a.close()
        await on_b.close()


async def test_the_upstream_limit_holds_across_processes(apps: tuple[App, App], upstream: Upstream) -> None:
    a, b = apps
    first, second = await Shopper.visit(a), await Shopper.visit(b)
    tab_a, tab_b = await first.open(a), await second.open(b)
    upstream.call(lambda: setattr(upstream.server, "peak_authenticated", upstream.server.authenticated))
    upstream.call(lambda: setattr(upstream.server, "peak_connections", upstream.server.connections))
    upstream.pause()
    try:
        await tab_a.send(kind="message", text="milk", key="limit-a")
        await tab_a.until("live-")  # process A holds the deployment's only upstream socket, mid-reply
        await tab_b.send(kind="message", text="bread", key="limit-b")
        await tab_b.until("You are first in line")  # process B queues instead of taking a second slot
        # (it may open its socket ahead of the slot, but authenticates on it only once the slot is its own)
        assert upstream.call(lambda: upstream.server.authenticated) == 1
        upstream.resume()
        await tab_a.until(READY)
        done_b = await tab_b.until(READY)
        assert 'data-role="assistant"' in done_b
        assert "Reconnecting" not in "".join(tab_b.seen)  # never refused with 4029 and retried
        assert upstream.call(lambda: upstream.server.peak_authenticated) == 1
        # B's socket opened ahead of its slot is the only socket more than the limit.
        assert upstream.call(lambda: upstream.server.peak_connections) <= 2
    finally:
        upstream.resume()
        await tab_a.close()
        await tab_b.close()


async def test_sockets_per_session_are_capped_across_processes(apps: tuple[App, App]) -> None:
    a, b = apps
    shopper = await Shopper.visit(a)
    tabs = [await shopper.open(a), await shopper.open(b), await shopper.open(a)]
    extra = await shopper.open(b)
    try:
        refused = await extra.until("too_many_connections")
        assert "too many tabs" in refused
        await asyncio.wait_for(extra.ws.wait_closed(), 15)
        assert extra.ws.close_code == 4429
        # The open tabs still work.
        await tabs[0].send(kind="sync", after=0)
        await tabs[0].until(READY)
    finally:
        for tab in tabs:
            await tab.close()
    # Closed tabs give their places back: a new one is admitted.
    again = await shopper.open(b)
    await again.send(kind="sync", after=0)
    await again.until(READY)
    await again.close()


async def test_a_process_killed_mid_turn_loses_nothing_and_the_tab_continues_elsewhere(
    apps: tuple[App, App], upstream: Upstream, database: Database
) -> None:
    a, b = apps
    shopper = await Shopper.visit(a)
    tab = await shopper.open(a)
    upstream.pause()
    try:
        await tab.send(kind="message", text="milk", key="crash-1")
        await tab.until("live-")  # the reply is streaming from process A
        a.kill()
        await asyncio.wait_for(tab.ws.wait_closed(), 15)
    finally:
        upstream.resume()

    # The tab reconnects (through the proxy, to the surviving process) and catches up from what it had.
    tab = await shopper.open(b)
    try:
        await tab.send(kind="sync", after=tab.last_seq())
        caught_up = await tab.until("turn_interrupted")
        assert "interrupted by a server restart" in caught_up
        if READY not in caught_up[caught_up.index("turn_interrupted") :]:
            await tab.until(READY)
        await tab.send(kind="message", text="bread", key="crash-2")
        await tab.until(READY)
    finally:
        await tab.close()

    rows = database.rows(
        "SELECT m.seq, m.role, m.kind, m.text FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id "
        "WHERE c.public_id = %s ORDER BY m.seq",
        shopper.public_id,
    )
    texts = [(role, kind, text) for _seq, role, kind, text in rows]
    assert texts[0] == ("user", "text", "milk")
    assert ("assistant", "error", "turn_interrupted") in texts
    assert ("user", "text", "bread") in texts
    assert texts.index(("user", "text", "bread")) > texts.index(("assistant", "error", "turn_interrupted"))
    after_bread = texts[texts.index(("user", "text", "bread")) :]
    assert any(role == "assistant" and kind == "text" for role, kind, _text in after_bread)
    [(status, busy_owner)] = database.rows(
        "SELECT status, busy_owner FROM chat_conversation WHERE public_id = %s", shopper.public_id
    )
    assert (status, busy_owner) == ("idle", "")
    # Structured logs: B's JSON lines name the conversation they are about.
    lines = [json.loads(line) for line in b.log().splitlines() if line.startswith("{")]
    assert any(line["conversation"] and "died" in line["message"] for line in lines)
