"""Every fence of ``chat.compat``: pinned to the locked versions, off by its switch, and under a version it does not
know the library's own behaviour with one warning. Each patch's own behaviour is tested in its module's test file;
here each is also run with its switch off, against the real library."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
from channels.db import aclose_old_connections
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from websockets.asyncio.client import ClientConnection

from chat.compat import (
    channels_dispatch,
    channels_layer,
    daphne_access,
    daphne_buffer,
    fences,
    startup,
    twisted_tcp,
    websockets_frames,
)
from chat.sandbox.server import SandboxConfig, SandboxServer
from chat.vizochok.backoff import Backoff
from chat.vizochok.client import UpstreamConfig, open_session
from tests.processes import ROOT

ALL = {
    "TWISTED_WRITE": twisted_tcp.FENCE,
    "WEBSOCKETS_TEXT": websockets_frames.FENCE,
    "CHANNELS_LAYER": channels_layer.FENCE,
    "CHANNELS_DISPATCH": channels_dispatch.FENCE,
    "DAPHNE_SEND_BUFFER": daphne_buffer.FENCE,
    "DAPHNE_ACCESS_LOG": daphne_access.FENCE,
}


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.txt").read_text()
    return {name.lower(): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, re.M)}


def test_the_package_lists_every_fence_and_the_start_asks_each() -> None:
    assert startup.check_all() == dict.fromkeys(ALL, True)
    assert fences.FENCES == ALL


@pytest.mark.parametrize("name", sorted(ALL))
def test_each_fence_knows_the_locked_version(name: str) -> None:
    """Moving a pin in requirements.txt fails here until the patch is checked against the new version."""
    locked = locked_versions()
    for distribution, versions in ALL[name].pins.items():
        assert locked[distribution] in versions, f"{name}: {distribution} {locked[distribution]} is not vetted"
    assert ALL[name].unknown_versions() == {}


def test_an_unknown_version_is_the_librarys_own_behaviour_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    stale = fences.Fence("TEST_STALE", {"twisted": frozenset({"0.0.1"})}, "a patch for an old Twisted")
    with caplog.at_level(logging.WARNING, logger="chat.compat"):
        assert not stale.active()
        assert not stale.active()
    (record,) = caplog.records
    assert "VIZOCHOK_COMPAT_TEST_STALE" in record.getMessage() and "twisted 26.10.0" in record.getMessage()


def test_the_installed_versions_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """``active()`` is asked on every message a consumer dispatches; reading a distribution's metadata scans
    site-packages (about 2 ms), and what is installed does not change under a running process."""
    read: list[str] = []
    own = metadata.version

    def version(distribution: str) -> str:
        read.append(distribution)
        return str(own(distribution))

    monkeypatch.setattr(metadata, "version", version)
    fence = fences.Fence("TEST_READ_ONCE", {"asgiref": frozenset({"0.0.1"}), "twisted": frozenset()}, "x")
    for _ in range(3):
        fence.active()
    assert sorted(read) in ([], ["asgiref"], ["asgiref", "twisted"], ["twisted"])


def test_a_missing_library_is_an_unknown_version() -> None:
    assert fences.Fence("TEST_GONE", {"no-such-dist": frozenset({"1"})}, "x").unknown_versions() == {
        "no-such-dist": "(not installed)"
    }


@pytest.mark.parametrize(("value", "active"), [("0", False), ("off", False), ("false", False), ("1", True), ("", True)])
def test_the_switch(monkeypatch: pytest.MonkeyPatch, value: str, active: bool) -> None:
    monkeypatch.setenv("VIZOCHOK_COMPAT_CHANNELS_LAYER", value)
    assert channels_layer.FENCE.active() is active


# --- each patch, switched off: the library's own path ----------------------------------------------------------


@pytest.mark.parametrize(("switch", "expected"), [("1", "True True"), ("0", "False False")])
def test_twisted_write_is_patched_only_when_on(switch: str, expected: str) -> None:
    """install() changes a class for the whole process: each case in a fresh interpreter."""
    probe = (
        "from chat.compat import twisted_tcp\n"
        "from twisted.internet import tcp\n"
        "print(twisted_tcp.install(), getattr(tcp.Connection.write, 'immediate', False))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "VIZOCHOK_COMPAT_TWISTED_WRITE": switch}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == expected


@pytest.mark.parametrize("switch", ["1", "0"])
def test_the_access_log_is_written_by_ours_only_when_on(monkeypatch: pytest.MonkeyPatch, switch: str) -> None:
    """Daphne's real AccessLogGenerator on a real stream: ours redacts the entry token, Daphne's own writes it."""
    import io
    from datetime import UTC, datetime

    from daphne.access import AccessLogGenerator

    monkeypatch.setenv("VIZOCHOK_COMPAT_DAPHNE_ACCESS_LOG", switch)

    def redacting(own: daphne_access.Writer) -> daphne_access.Writer:
        def write(self: Any, host: str, date: datetime, request: str, *args: Any, **kwargs: Any) -> None:
            own(self, host, date, request.replace("secret", "[redacted]"), *args, **kwargs)

        return write

    try:
        assert daphne_access.install(redacting) is (switch == "1")
        stream = io.StringIO()
        AccessLogGenerator(stream).write_entry("127.0.0.1", datetime.now(UTC), "GET /?token=secret", 200, 5)
    finally:
        daphne_access.uninstall()
    line = stream.getvalue()
    assert "GET /?token=" in line and ("secret" in line) is (switch == "0")
    daphne_access.uninstall()  # twice: still Daphne's own writer
    assert AccessLogGenerator.write_entry.__qualname__ == "AccessLogGenerator.write_entry"


async def _one_turn(monkeypatch: pytest.MonkeyPatch, switch: str) -> tuple[type[ClientConnection], list[str]]:
    monkeypatch.setenv("VIZOCHOK_COMPAT_WEBSOCKETS_TEXT", switch)
    async with SandboxServer(SandboxConfig(tokens_per_second=0, ping_interval=0)) as sandbox:
        config = UpstreamConfig(url=sandbox.url, token="sk_test_compat", store_id="demo", user_id="u1")
        session = await open_session(config, None, backoff=Backoff(max_attempts=0))
        try:
            kinds = [type(event).__name__ async for event in session.turn(session.message("milk"))]
            return type(session._ws), kinds
        finally:
            await session.close()


async def test_upstream_frames_arrive_the_same_with_the_websockets_patch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    patched, with_patch = await _one_turn(monkeypatch, "1")
    plain, without = await _one_turn(monkeypatch, "0")
    assert patched is websockets_frames.DirectTextConnection and plain is ClientConnection
    assert with_patch == without and with_patch[-1] == "ResponseComplete" and "TextDelta" in with_patch


async def test_the_channel_layer_is_channels_own_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIZOCHOK_COMPAT_CHANNELS_LAYER", "0")
    layer = channels_layer.RelayChannelLayer(capacity=2)
    assert not layer.patched
    a = await layer.new_channel()
    await layer.group_add("conv", a)
    await layer.group_send("conv", {"type": "chat.fragment", "html": "<p>1</p>", "items": [1]})
    await layer.send(a, {"type": "chat.fragment", "html": "<p>2</p>"})
    assert [(await layer.receive(a))["html"] for _ in range(2)] == ["<p>1</p>", "<p>2</p>"]


class _Consumer:
    async def chat_fragment(self, message: dict[str, Any]) -> None:
        self.seen = message


@pytest.mark.django_db  # channels' hop closes old database connections
@pytest.mark.parametrize(("switch", "hops"), [("1", 0), ("0", 1)])
async def test_dispatch_skips_the_connection_hop_only_when_on(
    monkeypatch: pytest.MonkeyPatch, switch: str, hops: int
) -> None:
    monkeypatch.setenv("VIZOCHOK_COMPAT_CHANNELS_DISPATCH", switch)
    made: list[int] = []

    async def counted() -> None:  # channels' own call, counted where this module makes it
        made.append(1)
        await aclose_old_connections()

    monkeypatch.setattr(channels_dispatch, "aclose_old_connections", counted)
    consumer = _Consumer()
    handler = await channels_dispatch.handler_for(consumer, {"type": "chat.fragment", "html": "x"})
    await handler({"type": "chat.fragment", "html": "x"})
    assert consumer.seen == {"type": "chat.fragment", "html": "x"} and len(made) == hops
    with pytest.raises(ValueError, match="No handler"):
        await channels_dispatch.handler_for(consumer, {"type": "chat.nothing"})


@pytest.fixture
def daphne_like_send() -> Iterator[tuple[Any, socket.socket]]:
    """The shape Daphne hands an application: ``partial(handle_reply, protocol)``, the protocol on a real Twisted
    TCP connection (over a socket pair; no reactor needed to queue bytes)."""
    from twisted.internet import reactor

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    protocol = Protocol()
    conn = tcp.Connection(ours, protocol, reactor)  # type: ignore[arg-type]
    conn.connected = True
    protocol.transport = conn  # type: ignore[assignment]

    def handle_reply(protocol: Any, message: dict[str, Any]) -> None:
        raise AssertionError("not called by the measure")

    try:
        yield functools.partial(handle_reply, protocol), theirs
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("switch", ["1", "0"])
def test_the_send_buffer_is_measured_only_when_on(
    monkeypatch: pytest.MonkeyPatch, daphne_like_send: tuple[Any, socket.socket], switch: str
) -> None:
    monkeypatch.setenv("VIZOCHOK_COMPAT_DAPHNE_SEND_BUFFER", switch)
    send, _theirs = daphne_like_send
    buffer = daphne_buffer.SendBuffer(send)
    if switch == "0":
        assert not buffer.measurable and buffer.pending() is None
        return
    assert buffer.measurable and buffer.pending() == 0
    transport, theirs = send.args[0].transport, daphne_like_send[1]
    written = 0
    for _ in range(200):  # until the kernel takes no more: the rest waits in Twisted's buffer for the reactor
        transport.write(b"x" * 65536)
        written += 65536
        if buffer.pending():
            break
    theirs.setblocking(False)
    received = 0
    with contextlib.suppress(BlockingIOError):
        while chunk := theirs.recv(1 << 20):
            received += len(chunk)
    assert buffer.pending() == written - received > 0
