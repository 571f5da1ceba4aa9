"""The attack reviews' findings (issues 15 and 24), each reproduced against a real Daphne process over real sockets.

One app process serves the whole module: started as the README's production block starts it, with one trusted
proxy hop, small socket caps, and the embedded sandbox as its upstream. Each test uses addresses and shoppers of
its own, so the caps of one test never touch another.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat.web.embed import mint_token
from tests.chat.web.attack_site import READY, TIMEOUT, Site, Visitor

SESSION_CAP = 3
ADDRESS_CAP = 4
SECRET = "attack-review-embed-secret"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(
        tmp_path_factory.mktemp("attacked"),
        VIZOCHOK_MAX_SOCKETS_PER_SESSION=str(SESSION_CAP),
        VIZOCHOK_MAX_SOCKETS_PER_IP=str(ADDRESS_CAP),
        VIZOCHOK_TRUSTED_PROXY_HOPS="1",
        VIZOCHOK_EMBED_SECRET=SECRET,
        VIZOCHOK_SYNC_INTERVAL="0.1",
    ).start()
    yield running
    running.stop()


async def sockets_settle(site: Site, expected: float) -> None:
    """Wait until the server's open-socket gauge reads ``expected`` (a closed socket is released just after)."""
    async with asyncio.timeout(TIMEOUT):
        # A gauge in another process has no event to await; the loop is bounded by the timeout.
        while await asyncio.to_thread(site.metric, "vizochok_active_sockets") != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


# --- 1. one crafted frame ------------------------------------------------------------------------------------

NESTED = '{"kind":"sync","a":' + "[" * 7000 + "]" * 7000 + "}"


async def test_a_deeply_nested_frame_is_refused_and_leaks_no_socket_cap(site: Site) -> None:
    visitor = Visitor.arrive(site)
    for _ in range(SESSION_CAP + 2):  # more crafted sockets than the session may hold
        tab = await visitor.socket(forwarded_for="10.1.0.1")
        await tab.ws.send(NESTED)
        assert 'data-code="invalid_frame"' in await tab.until("chat-error")
        await tab.send(kind="sync", after=0)  # the socket is still open and still answers
        assert READY in await tab.until(READY)
        await tab.close()
    await sockets_settle(site, 0)
    tabs = [await visitor.socket(forwarded_for="10.1.0.1") for _ in range(SESSION_CAP)]
    for tab in tabs:
        await tab.send(kind="sync", after=0)
        assert READY in await tab.until(READY)
        await tab.close()
    await sockets_settle(site, 0)
    assert "Traceback" not in site.log() and "RecursionError" not in site.log()


async def refused_with_4429(visitor: Visitor, forwarded_for: str) -> bool:
    tab = await visitor.socket(forwarded_for=forwarded_for)
    try:
        await tab.until("too_many_connections")
        await tab.ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd is not None and closed.rcvd.code == 4429
    finally:
        await tab.close()
    return False


async def test_behind_the_proxy_the_cap_counts_the_address_the_proxy_saw(site: Site) -> None:
    # The attacker (10.2.0.66) writes the victim's address (10.2.0.7) first; our proxy appends the real one.
    attackers = [Visitor.arrive(site), Visitor.arrive(site)]
    spoofed = "10.2.0.7, 10.2.0.66"
    held = [await attackers[i % 2].socket(forwarded_for=spoofed) for i in range(ADDRESS_CAP)]
    try:
        for tab in held:
            await tab.send(kind="sync", after=0)
            await tab.until(READY)
        assert await refused_with_4429(attackers[0], spoofed)  # the attacker's own address is full
        victim = Visitor.arrive(site)
        tab = await victim.socket(forwarded_for="10.2.0.7")
        await tab.send(kind="sync", after=0)
        assert READY in await tab.until(READY)  # the victim is not locked out
        await tab.close()
    finally:
        for tab in held:
            await tab.close()
    await sockets_settle(site, 0)


async def test_the_socket_refusals_do_not_leak(site: Site) -> None:
    """A refused socket (over the cap) gives back what it claimed, so the address is free again afterwards."""
    visitors = [Visitor.arrive(site) for _ in range(2)]
    for _ in range(3):
        held = [await visitors[i % 2].socket(forwarded_for="10.3.0.9") for i in range(ADDRESS_CAP)]
        assert await refused_with_4429(visitors[0], "10.3.0.9")
        for tab in held:
            await tab.close()
        await sockets_settle(site, 0)


# --- 7. malformed conversation ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["notauuid", "1", "%00", "0" * 40, "12345678-1234-1234-1234-1234567890zz"])
async def test_a_malformed_conversation_id_is_a_404_and_a_refused_socket(site: Site, bad: str) -> None:
    visitor = Visitor.arrive(site)
    assert visitor.get(f"/?c={bad}").status == 404
    with pytest.raises(InvalidStatus) as refused:
        await visitor.socket(path=f"/ws/chat/?c={bad}&lang=en")
    assert refused.value.response.status_code == 403  # a close before accept: the handshake is refused
    assert "Traceback" not in site.log()


# --- 8. the whole origin ---------------------------------------------------------------------------------------


async def test_the_socket_origin_is_compared_whole(site: Site) -> None:
    visitor = Visitor.arrive(site)
    tab = await visitor.socket(forwarded_for="10.8.0.1")  # the page's own origin
    await tab.close()
    for origin in (
        f"http://127.0.0.1:{site.port + 1}",  # another local app on another port
        f"https://127.0.0.1:{site.port}",  # the socket is plain, so the page was too
        f"http://localhost:{site.port}",  # another host name than the one the socket asked for
    ):
        with pytest.raises(InvalidStatus):
            await visitor.socket(forwarded_for="10.8.0.1", origin=origin)


# --- 9. framed cookies stay with the chat ----------------------------------------------------------------------


def test_an_embed_visit_does_not_make_the_admin_cookies_cross_site(site: Site) -> None:
    site.add_admin("framed-admin", "a long admin password 9")
    visitor = Visitor.arrive(site, "/?embed=1&lang=en")  # once framed (or a link that says so)
    login = site.admin_login(visitor, "framed-admin", "a long admin password 9")
    assert login.status == 302 and login.header("Location") == "/admin/"
    admin_cookies = [line for line in login.set_cookies if line.startswith(("sessionid=", "csrftoken="))]
    assert {line.split("=")[0] for line in admin_cookies} == {"sessionid", "csrftoken"}
    for line in admin_cookies:
        assert "SameSite=Lax" in line and "Partitioned" not in line and "SameSite=None" not in line, line


# --- 6. admin login throttling ---------------------------------------------------------------------------------


def test_repeated_wrong_admin_passwords_lock_the_login_until_an_admin_clears_it(site: Site) -> None:
    site.add_admin("guessed-admin", "the right admin password 6")
    site.add_admin("other-admin", "the other admin password 6")
    attacker = Visitor.arrive(site)
    attacker.headers["X-Forwarded-For"] = "10.6.0.66"
    answers = [site.admin_login(attacker, "guessed-admin", f"wrong guess {n}").status for n in range(8)]
    assert answers[0] == 200 and 429 in answers, answers  # the form again, then locked
    assert answers[answers.index(429) :] == [429] * (8 - answers.index(429))
    assert site.admin_login(attacker, "guessed-admin", "the right admin password 6").status == 429  # still locked

    # Another admin (elsewhere) is not locked out, sees the lockout in the admin and clears it.
    colleague = Visitor.arrive(site)
    colleague.headers["X-Forwarded-For"] = "10.6.0.7"
    assert site.admin_login(colleague, "other-admin", "the other admin password 6").status == 302
    listing = colleague.get("/admin/axes/accessattempt/?q=guessed-admin")
    assert listing.status == 200 and "10.6.0.66" in listing.body
    ids = re.findall(r'name="_selected_action" value="(\d+)"', listing.body)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', listing.body).group(1)  # type: ignore[union-attr]
    cleared = colleague.post(
        "/admin/axes/accessattempt/",
        {"csrfmiddlewaretoken": token, "action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert cleared.status == 302
    assert site.admin_login(attacker, "guessed-admin", "the right admin password 6").status == 302


# --- 10. entry tokens ----------------------------------------------------------------------------------------


def token(**claims: Any) -> str:
    return mint_token({"store_id": "store-7", "exp": int(time.time()) + 120, "jti": uuid.uuid4().hex, **claims}, SECRET)


def signed_raw(payload: str) -> str:
    """A token over exactly these JSON bytes (json.dumps would never write some of them)."""
    payload_b64 = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    signature = hmac.new(SECRET.encode(), payload_b64.encode(), hashlib.sha256).digest()
    return f"{payload_b64}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_an_entry_token_binds_one_session_only(site: Site) -> None:
    link = f"/?token={token(user_id='host-shopper-10')}&lang=en"
    assert Visitor(site).get(link).status == 302
    replay = Visitor(site).get(link)  # the same link, leaked or shared, in another browser
    assert replay.status == 403 and 'data-reason="used"' in replay.body
    assert not replay.set_cookies or all(not line.startswith("sessionid=") for line in replay.set_cookies)


@pytest.mark.parametrize(
    "payload",
    [
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":1e308}',
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":Infinity}',
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":-Infinity}',
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":NaN}',
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":"%(exp)s"}',
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":%(far)s}',
        '{"user_id":"u-10","store_id":"s","exp":%(exp)s}',
        '{"user_id":"u-10","store_id":"s","jti":"","exp":%(exp)s}',
        '{"user_id":"u-10","store_id":"s","jti":12345678,"exp":%(exp)s}',
        '{"user_id":"u-10","store_id":"s","jti":"%(jti)s","exp":%(exp)s,"exp":1e999}',
    ],
)
def test_every_bad_claim_gets_the_403_page(site: Site, payload: str) -> None:
    now = int(time.time())
    values = {"jti": uuid.uuid4().hex, "exp": now + 120, "far": now + 365 * 24 * 3600}
    response = Visitor(site).get(f"/?token={signed_raw(payload % values)}&lang=en")
    assert response.status == 403 and 'id="token-error"' in response.body
    assert "Traceback" not in site.log()


# --- 4. identity namespaces --------------------------------------------------------------------------------------


def test_a_token_cannot_claim_a_signed_in_users_identity(site: Site) -> None:
    site.add_admin("namespaced-admin", "the admin password of item 4")
    admin = Visitor(site)
    admin.headers["X-Forwarded-For"] = "10.4.0.1"
    assert site.admin_login(admin, "namespaced-admin", "the admin password of item 4").status == 302
    with sqlite3.connect(site.db) as db:
        (pk,) = db.execute("SELECT id FROM auth_user WHERE username = 'namespaced-admin'").fetchone()
    admin.load("/?lang=en")
    asyncio.run(say(admin, "buckwheat"))  # the admin's own conversation now has their words in it
    stolen = Visitor(site).get(f"/?token={token(user_id=f'user-{pk}', conversation_id=admin.public_id)}&lang=en")
    assert stolen.status == 403 and 'id="token-error"' in stolen.body
    assert Visitor(site).get(f"/?token={token(user_id='anon-0123456789abcdef')}&lang=en").status == 403
    # A host's own ids never reach the Django users' or the anonymous shoppers' conversations either.
    entered = Visitor(site)
    bound = entered.get(f"/?token={token(user_id=f'{pk}', conversation_id=admin.public_id)}&lang=en")
    assert bound.status == 302
    page = entered.load(bound.header("Location"))
    assert entered.public_id != admin.public_id and "buckwheat" not in page.body


async def say(visitor: Visitor, text: str) -> None:
    tab = await visitor.socket(forwarded_for="10.4.0.1")
    try:
        await tab.send(kind="message", text=text, key=uuid.uuid4().hex)
        await tab.until(READY)
    finally:
        await tab.close()


# --- 5. a link cannot reword the chat ------------------------------------------------------------------------------

PHISHING = (
    "/?lang=en&bot_name=Bank+Security&welcome_message=Your+account+is+locked+type+your+card+number"
    "&placeholder=Card+number+%2B+CVV&bot_avatar=https://evil.example/logo.png&primary_color=%23ff0000"
)


def test_a_link_cannot_reword_the_chat_now_or_later(site: Site) -> None:
    visitor = Visitor(site)
    for page in (visitor.load(PHISHING), visitor.load("/?lang=en")):  # the link, then a plain later visit
        assert page.status == 200
        for planted in ("Bank Security", "account is locked", "Card number", "evil.example", "#ff0000"):
            assert planted not in page.body


def test_a_signed_token_may_set_the_widget_options(site: Site) -> None:
    visitor = Visitor(site)
    widget = {"bot_name": "Shop helper", "primary_color": "#2d8a4e", "bot_avatar": "javascript:alert(1)"}
    entered = visitor.get(f"/?token={token(user_id='themed-5', widget=widget)}&embed=1&lang=en")
    assert entered.status == 302
    for page in (visitor.load(entered.header("Location")), visitor.load("/?lang=en")):
        assert "Shop helper" in page.body and 'data-theme-primary="#2d8a4e"' in page.body
        assert "javascript:" not in page.body


# --- 11. a crawler writes nothing ------------------------------------------------------------------------------


def rows(site: Site, table: str) -> int:
    with sqlite3.connect(site.db) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_page_views_without_a_cookie_write_no_session_and_no_conversation(site: Site) -> None:
    before = rows(site, "django_session"), rows(site, "chat_conversation")
    for n in range(40):
        path = ["/", "/?lang=en", "/?embed=1", f"/?c={uuid.uuid4()}", "/?lang=uk&embed=1"][n % 5]
        assert Visitor(site).get(path).status == 200
    assert (rows(site, "django_session"), rows(site, "chat_conversation")) == before


async def test_the_conversation_is_created_when_the_shopper_first_sends(site: Site) -> None:
    visitor = Visitor.arrive(site)
    conversations = rows(site, "chat_conversation")
    tab = await visitor.socket(forwarded_for="10.11.0.1")
    await tab.send(kind="sync", after=0)
    assert READY in await tab.until(READY)  # a socket with nothing stored yet is a normal, empty chat
    assert rows(site, "chat_conversation") == conversations
    await tab.send(kind="message", text="buckwheat", key=uuid.uuid4().hex)
    assert "product-card" in await tab.until(READY)
    await tab.close()
    assert rows(site, "chat_conversation") == conversations + 1
    page = visitor.load("/?lang=en")  # the same browser comes back: its conversation is there
    assert "buckwheat" in page.body and visitor.public_id in page.body
    stranger = Visitor.arrive(site)
    with pytest.raises(InvalidStatus):  # somebody else's conversation: refused, even now that it exists
        await stranger.socket(path=visitor.ws_path, forwarded_for="10.11.0.2")
    assert "buckwheat" not in stranger.load(f"/?c={visitor.public_id}&lang=en").body


# --- 3. a tab that never reads ---------------------------------------------------------------------------------


def masked_text_frame(text: str) -> bytes:
    """A client's WebSocket text frame (clients must mask), written by hand: this client never reads."""
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    header = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    return header + mask + bytes(byte ^ mask[n % 4] for n, byte in enumerate(payload))


def never_reading_socket(site: Site, visitor: Visitor, forwarded_for: str) -> socket.socket:
    """Opens the chat socket with a tiny receive window, then never reads from it again."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(TIMEOUT)
    raw.connect(("127.0.0.1", site.port))
    key = base64.b64encode(os.urandom(16)).decode()
    cookie = visitor.cookie_header()["Cookie"]
    raw.sendall(
        (
            f"GET {visitor.ws_path} HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {site.url}\r\nCookie: {cookie}\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n"
        ).encode()
    )
    assert raw.recv(12) == b"HTTP/1.1 101"  # the upgrade's first bytes; nothing is read after this
    return raw


def long_history(site: Site, public_id: str, messages: int, chars: int) -> None:
    with sqlite3.connect(site.db) as db:
        (pk, last) = db.execute(
            "SELECT id, last_seq FROM chat_conversation WHERE public_id = ?", (public_id.replace("-", ""),)
        ).fetchone()
        db.executemany(
            "INSERT INTO chat_message (conversation_id, seq, role, kind, text, payload, complete, client_key, "
            "created_at) VALUES (?, ?, 'user', 'text', ?, '{}', 1, '', '2026-01-01 00:00:00')",
            [(pk, last + n, f"{n} " + "x" * chars) for n in range(1, messages + 1)],
        )
        db.execute("UPDATE chat_conversation SET last_seq = ? WHERE id = ?", (last + messages, pk))


async def test_a_tab_that_never_reads_is_dropped_instead_of_growing_the_server(site: Site) -> None:
    visitor = Visitor.arrive(site)
    await say(visitor, "milk")  # the conversation is stored; then it gets a long history
    long_history(site, visitor.public_id, messages=200, chars=2000)  # a catch-up of about 450 KB
    server = psutil.Process(site.process.pid)  # type: ignore[union-attr]
    before = server.memory_info().rss
    raw = await asyncio.to_thread(never_reading_socket, site, visitor, "10.3.3.3")
    try:
        await sockets_settle(site, 1)
        sync = masked_text_frame('{"kind":"sync","after":0}')
        dropped = False
        for _ in range(100):  # a catch-up asked for every 0.1 s; none of it is read
            try:
                raw.sendall(sync)
            except OSError:  # the server dropped the connection (a reset)
                dropped = True
                break
            if await asyncio.to_thread(site.metric, "vizochok_active_sockets") == 0:
                dropped = True
                break
            await asyncio.sleep(0.1)
        grown = (server.memory_info().rss - before) / 2**20
        assert dropped, f"the server kept a socket that reads nothing (grew {grown:.0f} MiB)"
        assert grown < 48, f"the server grew {grown:.0f} MiB before dropping it"
        assert "left" in site.log() and "unread" in site.log()
    finally:
        raw.close()


def test_a_conversation_not_stored_yet_keeps_its_id_across_tabs_and_links(site: Site) -> None:
    visitor = Visitor.arrive(site)
    first = visitor.public_id
    assert Visitor(site, cookies=dict(visitor.cookies)).load("/?lang=en").status == 200
    another_tab = Visitor(site, cookies=dict(visitor.cookies))
    another_tab.load("/?lang=en")
    assert another_tab.public_id == first  # every tab of this shopper shows the same, not yet stored, conversation
    page = visitor.load("/?lang=en")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)  # type: ignore[union-attr]
    fresh = visitor.post("/conversations/new/", {"csrfmiddlewaretoken": token})
    assert fresh.status == 302 and "new=1" in fresh.header("Location")
    visitor.load(fresh.header("Location"))
    new_id = visitor.public_id
    assert new_id != first
    link = re.search(r'href="(\?c=[^"]+&amp;lang=uk)"', visitor.load(fresh.header("Location")).body).group(1)  # type: ignore[union-attr]
    visitor.load("/" + link.replace("&amp;", "&"))
    assert visitor.public_id == new_id  # switching the language keeps the new conversation


# --- issue 24 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["%C2%B2", "%D9%A1%D9%A2", "1_2", "+1", "%201", "-1", "1" * 12])
def test_a_number_a_client_writes_in_unicode_digits_is_no_number(site: Site, number: str) -> None:
    """Issue 24, item 4: "²" passed ``isdigit`` and failed ``int`` (HTTP 500 on "Show more")."""
    visitor = Visitor.arrive(site)
    for query in (f"seq={number}&offset=12", f"seq=1&offset={number}"):
        assert visitor.get(f"/conversations/cards/?c={visitor.public_id}&{query}").status == 404
    assert "Traceback" not in site.log()


async def frames_until_closed(tab: Any) -> list[str]:
    frames: list[str] = []
    try:
        while True:
            frames.append(str(await tab.ws.recv()))
    except ConnectionClosed:
        return frames


async def test_frames_sent_to_a_refused_socket_are_not_handled(site: Site) -> None:
    """Issue 24, item 6: a socket refused with 4429 still dispatched what the client had sent (ERROR lines,
    ``relay_error`` counts). A socket that was not admitted handles nothing."""
    relay_errors = 'vizochok_refused_frames_total{code="relay_error"}'
    before = site.metric(relay_errors)
    failures = site.log().count("websocket.receive failed")
    visitors = [Visitor.arrive(site) for _ in range(2)]
    held = [await visitors[i % 2].socket(forwarded_for="10.24.6.1") for i in range(ADDRESS_CAP)]
    try:
        for _ in range(5):
            tab = await visitors[0].socket(forwarded_for="10.24.6.1")
            with contextlib.suppress(ConnectionClosed):  # the refusal may have closed it already
                for n in range(3):  # sent at once, before the refusal is read
                    await tab.ws.send(json.dumps({"kind": "message", "text": "milk", "key": uuid.uuid4().hex, "n": n}))
            frames = await frames_until_closed(tab)
            assert "too_many_connections" in "".join(frames) and "relay_error" not in "".join(frames)
            assert tab.ws.close_code == 4429
    finally:
        for tab in held:
            await tab.close()
    await sockets_settle(site, 0)
    assert site.metric(relay_errors) == before
    assert site.log().count("websocket.receive failed") == failures


async def logged(site: Site, needle: str, times: int = 1) -> str:
    """The server's log once it holds ``needle`` ``times`` times: a log file has no event to await, so it is read
    within a deadline."""
    async with asyncio.timeout(TIMEOUT):
        while site.log().count(needle) < times:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return site.log()


async def test_a_key_a_browser_chose_cannot_forge_a_log_line(site: Site) -> None:
    """Issue 24, item 5: the send ``key`` was logged with %s; in the plain format a newline in it forged a line."""
    forged = "k24\n2026-12-07 07:00:00,000 CRITICAL chat.ops [] fire"  # within the 64 characters kept
    visitor = Visitor.arrive(site)
    tab = await visitor.socket(forwarded_for="10.24.5.1")
    try:
        await tab.send(kind="message", text="milk", key=forged)
        await tab.until(READY)
        await tab.send(kind="message", text="milk", key=forged)  # the same key again: a duplicate, logged
        log = await logged(site, "duplicate send")
    finally:
        await tab.close()
    assert not any(line.startswith("2026-12-07 07:00:00,000 CRITICAL") for line in log.splitlines())
    assert repr(forged) in log  # quoted whole, on its own line


def test_entry_tokens_reach_no_log_line(site: Site) -> None:
    """Issue 24, item 5: a token, signature included, was whole in Daphne's access log."""
    minted = token(user_id="logged-24")
    signature = minted.rsplit(".", 1)[1]
    assert Visitor(site).get(f"/?token={minted}&lang=en").status == 302
    assert Visitor(site).get(f"/?token={minted}&lang=en").status == 403  # used: refused, and the 403 logged
    Visitor(site).get(f"/admin/?token={minted}")
    Visitor(site).get("/?lang=en")  # one more request: the access log line of the last one is written
    log = site.log()
    assert "token=[redacted]" in log
    assert signature not in log and minted.split(".", 1)[0] not in log


class WriteLock:
    """Another process's write lock on the site's SQLite file (a long migration, a stuck admin script)."""

    def __init__(self, site: Site) -> None:
        self.db = sqlite3.connect(site.db, timeout=TIMEOUT, isolation_level=None, check_same_thread=False)

    def __enter__(self) -> WriteLock:
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def conversation_row(site: Site, public_id: str) -> tuple[str, int, int]:
    with sqlite3.connect(site.db) as db:
        status, last_seq, pk = db.execute(
            "SELECT status, last_seq, id FROM chat_conversation WHERE public_id = ?", (public_id.replace("-", ""),)
        ).fetchone()
    with sqlite3.connect(site.db) as db:
        (questions,) = db.execute(
            "SELECT COUNT(*) FROM chat_message WHERE conversation_id = ? AND role = 'user'", (pk,)
        ).fetchone()
    return str(status), int(last_seq), int(questions)


async def test_a_send_on_a_write_locked_database_is_answered_within_the_budget(site: Site) -> None:
    """Issue 24, item 7: one attempt waited SQLite's 20 s busy timeout on the one database thread: a send was
    answered after 24 s and new sockets failed their 5 s handshake meanwhile."""
    visitor = Visitor.arrive(site)
    await say(visitor, "milk")  # stored: the next send's first database work is its claim, a write
    tab = await visitor.socket(forwarded_for="10.24.7.1")
    try:
        with WriteLock(site):
            await tab.send(kind="message", text="bread", key=uuid.uuid4().hex)
            other = await visitor.socket(forwarded_for="10.24.7.1")  # a handshake meanwhile gets through
            await other.send(kind="sync", after=0)
            assert READY in await other.until(READY)
            await other.close()
            refused = await tab.until("chat-error")  # refused while the lock is still held
            assert 'data-code="service_unavailable"' in refused
        await tab.send(kind="message", text="bread", key=uuid.uuid4().hex)
        assert "product-card" in await tab.until(READY)
    finally:
        await tab.close()
    assert "turn_interrupted" not in site.log()


async def test_a_send_whose_tab_left_while_the_database_was_locked_claims_nothing(site: Site) -> None:
    """Issue 24, item 7: the send ran once the lock was gone: the conversation busy, a seq and a turn taken for a
    shopper who had left, and the next send recorded ``turn_interrupted`` for a turn that never ran."""
    visitor = Visitor.arrive(site)
    await say(visitor, "milk")
    before = conversation_row(site, visitor.public_id)
    retried, dropped = site.log().count("retrying begin_turn"), site.log().count("dropped begin_turn")
    with WriteLock(site):
        tab = await visitor.socket(forwarded_for="10.24.7.2")
        await tab.send(kind="message", text="bread", key=uuid.uuid4().hex)
        await logged(site, "retrying begin_turn", retried + 1)  # its claim waits on the lock: it will retry
        await tab.close()  # the shopper leaves meanwhile
        await logged(site, "dropped begin_turn", dropped + 1)  # its next attempt is not made
    await sockets_settle(site, 0)
    assert conversation_row(site, visitor.public_id) == before  # idle, no seq taken, no question stored
    tab = await visitor.socket(forwarded_for="10.24.7.2")
    try:
        await tab.send(kind="message", text="bread", key=uuid.uuid4().hex)
        html = await tab.until(READY)
        assert "product-card" in html and "turn_interrupted" not in html
    finally:
        await tab.close()
