"""The deployment's one line for the key's upstream sockets, across two Daphne processes sharing Redis.

One upstream socket for the whole deployment (``VIZOCHOK_MAX_CONNECTIONS=1``) and a long idle grace, so only the
line's own signal can free a warm socket in time. Shoppers' addresses come from X-Forwarded-For, as our one trusted
proxy would append them (``VIZOCHOK_TRUSTED_PROXY_HOPS=1``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from chat.sandbox.server import SandboxConfig
from tests.production.conftest import (
    READY,
    TIMEOUT,
    App,
    Database,
    Shopper,
    Upstream,
    app_env,
    redis_or_skip,
)
from tests.tabs import MAX_QUEUE, Tab

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: Seconds every sandbox reply takes: the service time the fairness test measures against.
REPLY_SECONDS = 0.8


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    running = Upstream(SandboxConfig(reply_seconds=REPLY_SECONDS, ping_interval=0.0)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def apps(database: Database, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, App]]:
    redis_or_skip()
    env = app_env(
        database,
        upstream,
        VIZOCHOK_MAX_CONNECTIONS="1",
        VIZOCHOK_IDLE_GRACE="60",  # a warm socket would keep the slot for a minute but for the line's signal
        VIZOCHOK_TRUSTED_PROXY_HOPS="1",
        VIZOCHOK_QUEUED_PER_ADDRESS="3",
        VIZOCHOK_QUEUE_TIMEOUT="30",
        VIZOCHOK_MAX_SOCKETS_PER_SESSION="4",
    )
    logs = tmp_path_factory.mktemp("line")
    first, second = App("a", logs, env), App("b", logs, env)
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


async def open_from(shopper: Shopper, app: App, address: str) -> Tab:
    """A tab of ``shopper`` on ``app`` whose client address (as our proxy saw it) is ``address``."""
    ws = await connect(
        f"ws://127.0.0.1:{app.port}{shopper.ws_path}",
        origin=app.url,  # type: ignore[arg-type]
        additional_headers={"Cookie": shopper.cookie, "X-Forwarded-For": address},
        open_timeout=TIMEOUT,
        max_queue=MAX_QUEUE,
    )
    return Tab(ws, TIMEOUT)


def positions(html: str) -> list[int]:
    return [int(place) for place in re.findall(r'data-item="queue-state" data-position="(\d+)"', html)]


async def test_an_idle_socket_in_one_process_is_released_within_a_second_of_a_turn_waiting_in_another(
    apps: tuple[App, App], upstream: Upstream
) -> None:
    a, b = apps
    first, second = await Shopper.visit(a), await Shopper.visit(b)
    on_a, on_b = await open_from(first, a, "10.1.0.1"), await open_from(second, b, "10.1.0.2")
    try:
        await on_a.send(kind="message", text="milk", key="idle-a")
        await on_a.until(READY)
        # Process A keeps its socket warm for the next turn: it holds the deployment's only slot, idle.
        assert upstream.call(lambda: upstream.server.connections) == 1
        await on_b.send(kind="message", text="bread", key="idle-b")
        started = time.monotonic()
        await on_b.until("in line")  # process B's turn waits
        waited = time.monotonic()
        await on_b.until("live-")  # A gave its socket up, B opened its own and the reply streams
        assert time.monotonic() - waited < 1.0 + REPLY_SECONDS, "the idle socket was not given up at once"
        assert time.monotonic() - started < 1.0 + REPLY_SECONDS
        await on_b.until(READY)
        assert upstream.call(lambda: upstream.server.peak_authenticated) == 1
        assert upstream.call(lambda: upstream.server.refused_too_many) == 0
    finally:
        await on_a.close()
        await on_b.close()


async def test_the_place_in_line_updates_in_two_tabs_and_stop_leaves_the_line(
    apps: tuple[App, App], upstream: Upstream
) -> None:
    a, b = apps
    holder, leaver, waiter = await Shopper.visit(a), await Shopper.visit(a), await Shopper.visit(b)
    holding = await open_from(holder, a, "10.2.0.1")
    leaving = await open_from(leaver, a, "10.2.0.2")
    # The waiting shopper has two tabs, one on each process.
    tab_a, tab_b = await open_from(waiter, a, "10.2.0.3"), await open_from(waiter, b, "10.2.0.3")
    upstream.pause()
    try:
        await holding.send(kind="message", text="milk", key="place-1")
        await holding.until("live-")  # holds the only socket, mid-reply
        await leaving.send(kind="message", text="bread", key="place-2")
        await leaving.until('data-position="1"')
        await tab_b.send(kind="message", text="eggs", key="place-3")
        for tab in (tab_a, tab_b):
            seen = await tab.until('data-position="2"')
            assert "You are second in line" in seen
        await leaving.send(kind="stop")  # Stop leaves the line: everybody behind moves up
        await leaving.until(READY)
        for tab in (tab_a, tab_b):
            seen = await tab.until('data-position="1"')
            assert "You are first in line" in seen
        upstream.resume()
        await holding.until(READY)
        for tab in (tab_a, tab_b):
            served = await tab.until(READY)
            assert 'data-item="queue-state" hx-swap-oob' in served  # out of the line: the attribute goes
            assert 'data-role="assistant"' in served
    finally:
        upstream.resume()
        for tab in (holding, leaving, tab_a, tab_b):
            await tab.close()


async def test_a_flooding_address_does_not_delay_another_address_by_more_than_one_service_time(
    apps: tuple[App, App], upstream: Upstream, database: Database
) -> None:
    a, b = apps
    # The service time as a shopper alone sees it: send to first word, and send to the end.
    alone = await Shopper.visit(a)
    tab = await open_from(alone, a, "10.3.0.1")
    started = time.monotonic()
    await tab.send(kind="message", text="milk", key="alone")
    await tab.until("live-")
    first_word_alone = time.monotonic() - started
    await tab.until(READY)
    service = time.monotonic() - started
    await tab.close()

    # One address floods with a dozen fresh identities (a new cookie costs it one GET), over both processes.
    flooders = [await Shopper.visit(a if n % 2 else b) for n in range(12)]
    flood_tabs = [await open_from(f, a if n % 2 else b, "10.3.0.66") for n, f in enumerate(flooders)]
    shopper = await Shopper.visit(b)
    shopper_tab = await open_from(shopper, b, "10.3.0.7")
    streaming: list[asyncio.Future[str]] = []
    try:
        for n, flood_tab in enumerate(flood_tabs):
            await flood_tab.send(kind="message", text="milk", key=f"flood-{n}")
        answers = await asyncio.gather(*(t.until('data-state="') for t in flood_tabs))
        refused = [n for n, html in enumerate(answers) if "too_many_queued" in html]
        # One in service and three in line (VIZOCHOK_QUEUED_PER_ADDRESS): the rest are refused at the door.
        assert len(refused) >= len(flood_tabs) - 1 - 3
        admitted = [t for n, t in enumerate(flood_tabs) if n not in refused]
        # The flood holds the key (its first turn streams) and has more turns in line when a shopper comes.
        streaming = [asyncio.ensure_future(t.until("live-")) for t in admitted]
        await next(asyncio.as_completed(streaming))
        started = time.monotonic()
        await shopper_tab.send(kind="message", text="bread", key="shopper")
        await shopper_tab.until("live-")
        delay = time.monotonic() - started - first_word_alone
        assert delay <= service, f"first word {delay:.2f} s later than alone; one service time is {service:.2f} s"
        await shopper_tab.until(READY)
        # The flood's turns still in line outlive its tabs: they run to their end here, not into the next test (which
        # holds the upstream and would find the only slot held by one of them).
        await asyncio.gather(*streaming)
        await asyncio.gather(*(t.until(READY) for t in admitted))
    finally:
        for waiting in streaming:
            waiting.cancel()
        await asyncio.gather(*(t.close() for t in [*flood_tabs, shopper_tab]))
    # A refused flood stores nothing: not even the new conversations its fresh identities would have started.
    for n in refused:
        rows = database.rows("SELECT count(*) FROM chat_conversation WHERE public_id = %s", flooders[n].public_id)
        assert rows == [(0,)]


async def test_a_tab_that_joins_in_another_process_gets_the_place_in_line_at_once(
    apps: tuple[App, App], upstream: Upstream
) -> None:
    """The turn waits in process B; a tab of the same conversation that (re)connects to process A is told its place
    in its catch-up, not only when the line next moves (nothing moves here until the upstream resumes)."""
    a, b = apps
    holder, waiter = await Shopper.visit(a), await Shopper.visit(b)
    holding = await open_from(holder, a, "10.4.0.1")
    waiting = await open_from(waiter, b, "10.4.0.2")
    joined: Tab | None = None
    upstream.pause()
    try:
        await holding.send(kind="message", text="milk", key="join-1")
        await holding.until("live-")  # holds the only socket, mid-reply
        await waiting.send(kind="message", text="eggs", key="join-2")
        await waiting.until('data-position="1"')
        joined = await open_from(waiter, a, "10.4.0.2")
        await joined.send(kind="sync", after=0)
        caught_up = await joined.until('data-state="busy"')
        assert positions(caught_up) == [1], "the catch-up in the other process did not say the place in line"
        assert "You are first in line" in caught_up
        upstream.resume()
        served = await joined.until(READY)  # out of the line: the place goes in this tab too
        assert 'data-item="queue-state" hx-swap-oob' in served
        # A later catch-up, the turn over, says no place any more.
        await joined.send(kind="sync", after=joined.last_seq())
        assert positions(await joined.until('data-state="ready"')) == []
    finally:
        upstream.resume()
        for tab in (holding, waiting, joined):
            if tab is not None:
                await tab.close()
