"""PostgreSQL refuses a NUL in text and JSON: from a hostile upstream it must not wedge a conversation (issue 24).

A NUL in a reply made ``finish_turn`` fail (the conversation stayed busy, every next turn found it so) and a NUL in
a product name turned every turn into ``relay_error``. A Daphne process on a throwaway PostgreSQL database, its
upstream a hostile server on loopback (the SQLite side is ``tests/chat/turns/test_unstorable.py``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import Server, serve

from tests.chat.conftest import answering_with
from tests.chat.turns.test_unstorable import HOSTILE_TURN
from tests.production.conftest import READY, TIMEOUT, App, Database, Shopper

pytestmark = pytest.mark.postgres


class HostileUpstream:
    """The hostile upstream of the SQLite test, serving from a thread of its own (the app is another process)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hostile", daemon=True)
        self.server: Server | None = None

    def start(self) -> HostileUpstream:
        self.thread.start()

        async def listen() -> Server:
            return await serve(answering_with(HOSTILE_TURN), "127.0.0.1", 0)

        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result(TIMEOUT)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            asyncio.run_coroutine_threadsafe(self.server.wait_closed(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def app(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    upstream = HostileUpstream().start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database.url,
        "REDIS_URL": "",
        "VIZOCHOK_WS_URL": upstream.url,
        "VIZOCHOK_API_KEY": f"sk_test_{uuid.uuid4().hex}",
    }
    log_dir: Path = tmp_path_factory.mktemp("unstorable")
    running = App("unstorable", log_dir, env).start()
    yield running
    running.stop()
    upstream.stop()


async def test_nul_and_lone_surrogates_from_the_upstream_never_wedge_a_conversation(
    app: App, database: Database
) -> None:
    shopper = await Shopper.visit(app)
    tab = await shopper.open(app)
    try:
        for n in range(3):
            await tab.send(kind="message", text=f"milk {n}", key=f"pg-{n}")
            html = await tab.until(READY)
            assert "agent_busy" not in html and "relay_error" not in html, html[-500:]
            assert "product-card" in html and "bad \ufffd half" in html
    finally:
        await tab.close()
    [(status,)] = database.rows("SELECT status FROM chat_conversation WHERE public_id = %s", shopper.public_id)
    assert status == "idle"
    rows = database.rows(
        "SELECT m.role, m.kind, m.text, m.payload FROM chat_message m"
        " JOIN chat_conversation c ON c.id = m.conversation_id WHERE c.public_id = %s ORDER BY m.seq",
        shopper.public_id,
    )
    replies = [text for role, kind, text, _payload in rows if (role, kind) == ("assistant", "text")]
    assert replies == ["bad \ufffd half and a nul  here"] * 3
    names = [payload["items"][0]["name"] for _role, kind, _text, payload in rows if kind == "product_cards"]
    assert names == ["Milk \ufffd 2.5%"] * 3
    assert "turn_interrupted" not in [text for _role, _kind, text, _payload in rows]
    outcomes = database.rows(
        "SELECT t.outcome FROM chat_turn t JOIN chat_conversation c ON c.id = t.conversation_id"
        " WHERE c.public_id = %s ORDER BY t.seq",
        shopper.public_id,
    )
    assert outcomes == [("answered",)] * 3
