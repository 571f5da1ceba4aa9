"""Hostile and unlucky browsers: a reconnect storm against a real Daphne process, and fuzzed browser frames."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.chat.conftest import READY, communicator, make_shopper
from tests.production.conftest import App, Shopper

#: Sockets in the storm and how many are in flight at once (bounded: this is loopback, not a load test).
STORM_SOCKETS = 240
STORM_CONCURRENCY = 40
SHOPPERS = 8


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    import os

    from tests.processes import migrate

    tmp = tmp_path_factory.mktemp("storm")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "VIZOCHOK_WS_URL": "",
        "VIZOCHOK_MAX_SOCKETS_PER_SESSION": "12",
    }
    env.pop("REDIS_URL", None)
    migrate(env)
    app = App("storm", tmp, env).start()
    yield app
    app.stop()


async def test_a_reconnect_storm_is_served_or_refused_cleanly(sqlite_app: App) -> None:
    shoppers = [await Shopper.visit(sqlite_app) for _ in range(SHOPPERS)]
    gate = asyncio.Semaphore(STORM_CONCURRENCY)
    outcomes: list[str] = []

    async def reconnect(index: int) -> None:
        async with gate:
            tab = await shoppers[index % SHOPPERS].open(sqlite_app)
            try:
                await tab.send(kind="sync", after=0)
                frame = await tab.until('data-state="', timeout=30)
                outcomes.append("served" if READY in frame else "other")
            except ConnectionClosed:
                outcomes.append(f"closed {tab.ws.close_code}")
            finally:
                await tab.close()
            if tab.ws.close_code == 4429:
                assert any("too many tabs" in seen for seen in tab.seen)  # refused with a clear message

    await asyncio.gather(*(reconnect(index) for index in range(STORM_SOCKETS)))
    assert len(outcomes) == STORM_SOCKETS
    assert set(outcomes) <= {"served", "closed 4429"}, set(outcomes)
    assert outcomes.count("served") >= SHOPPERS  # every shopper got through

    # The process survived and still serves a normal tab and the probes.
    assert sqlite_app.alive
    tab = await shoppers[0].open(sqlite_app)
    await tab.send(kind="sync", after=0)
    await tab.until(READY)
    await tab.close()

    def probe() -> int:
        with urllib.request.urlopen(f"{sqlite_app.url}/healthz", timeout=10) as response:
            return int(response.status)

    assert await asyncio.to_thread(probe) == 200
    assert "Traceback" not in sqlite_app.log()


# --- fuzzing the browser-facing consumer ---------------------------------------------------------------------

_KINDS = ["sync", "add_to_cart", "update_quantity", "remove_from_cart", "quick_reply", "checklist_submit"]
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40), st.just("1e999")
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_fields = st.dictionaries(
    st.sampled_from(["kind", "sku", "quantity", "seq", "value", "item", "after", "key", "text", "HEADERS"])
    | st.text(max_size=10),
    _values,
    max_size=6,
)
_frames = st.one_of(
    _fields.map(json.dumps),
    st.builds(
        lambda kind, rest: json.dumps({**rest, "kind": kind}), st.sampled_from(_KINDS) | st.text(max_size=12), _fields
    ),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.just("x" * (17 * 1024)),
)


def _kind(frame: dict[str, Any]) -> str:
    """The kind the consumer reads (``_field``): a list's first item, and "message" for anything not a string."""
    value = frame.get("kind", "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) and value else "message"


@pytest.mark.django_db(transaction=True)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(_frames, min_size=1, max_size=6))
def test_fuzzed_browser_frames_never_break_the_socket(frames: list[Any]) -> None:
    """Whatever a tab sends that is not a plain message, it gets an answer and the socket stays usable."""

    async def scenario() -> None:
        key, conversation = await make_shopper("anon-fuzz")
        tab = communicator(key, conversation)
        accepted, _code = await tab.connect(timeout=5)
        assert accepted
        try:
            for frame in frames:
                if not frame:
                    continue  # the test communicator cannot send an empty frame
                if isinstance(frame, bytes):
                    await tab.send_to(bytes_data=frame)
                else:
                    try:
                        parsed = json.loads(frame)
                    except ValueError:
                        parsed = None
                    if isinstance(parsed, dict) and _kind(parsed) in ("message", "retry"):
                        continue  # a real message starts an upstream turn: covered by the relay tests
                    await tab.send_to(text_data=frame)
                answer = await tab.receive_from(timeout=5)
                assert answer.strip().startswith("<")  # an htmx fragment, never a traceback
            await tab.send_to(text_data=json.dumps({"kind": "sync", "after": 0}))
            assert READY in await tab.receive_from(timeout=5)
        finally:
            await tab.disconnect()

    async_to_sync(scenario)()
