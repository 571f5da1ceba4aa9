"""``chat.compat.twisted_tcp``: under Daphne (Twisted), a write goes to the socket at once; only what the kernel does
not take waits for the reactor, as before. Real sockets, no reactor running: what arrives arrived without one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol

from chat.compat import twisted_tcp


@pytest.fixture
def connection() -> Iterator[tuple[Any, socket.socket]]:
    twisted_tcp.install()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(1)
    from twisted.internet import reactor

    conn = tcp.Connection(ours, Protocol(), reactor)  # type: ignore[arg-type]
    conn.connected = True
    try:
        yield conn, theirs
    finally:
        ours.close()
        theirs.close()


def test_a_write_reaches_the_socket_at_once(connection: tuple[Any, socket.socket]) -> None:
    conn, theirs = connection
    conn.write(b"frame one")
    conn.write(b"frame two")
    assert theirs.recv(100) == b"frame oneframe two"
    assert conn._tempDataLen == 0 and len(conn.dataBuffer) == conn.offset  # nothing left for the reactor


def test_what_the_kernel_does_not_take_is_buffered_in_order(connection: tuple[Any, socket.socket]) -> None:
    conn, theirs = connection
    chunk = b"x" * 65536
    sent = 0
    while not conn._tempDataLen:  # fill the kernel's buffer: the rest of a write is kept for the reactor
        conn.write(chunk)
        sent += len(chunk)
    conn.write(b"tail")  # after something is buffered, a write never overtakes it
    assert conn._tempDataBuffer[-1] == b"tail"
    pending = conn._tempDataLen
    received = 0
    theirs.setblocking(False)
    while True:
        try:
            data = theirs.recv(1 << 20)
        except BlockingIOError:
            break
        received += len(data)
    assert received + pending == sent + len(b"tail")


def test_a_closed_peer_falls_back_to_the_reactor(connection: tuple[Any, socket.socket]) -> None:
    conn, theirs = connection
    theirs.close()
    conn.write(b"lost")  # the send fails: buffered, and the reactor's write finds the loss as it always did
    assert conn._tempDataLen == 4
