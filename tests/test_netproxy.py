"""The test network (tests/netproxy.py): it passes, holds and cuts bytes as the browser tests rely on."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.netproxy import NetProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[NetProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with NetProxy(server.server_address[1]) as running:
        yield running
    server.shutdown()
    server.server_close()


def connect(proxy: NetProxy, first: bytes = b"GET / HTTP/1.1\r\n\r\n") -> socket.socket:
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    client.sendall(first)
    assert client.recv(4096) == first
    return client


def test_a_blackhole_holds_bytes_without_closing_and_delivers_them_when_restored(proxy: NetProxy) -> None:
    client = connect(proxy)
    proxy.blackhole()
    client.sendall(b"held")
    client.settimeout(0.3)  # nothing can be awaited for "nothing arrives": a bounded wait
    with pytest.raises(TimeoutError):
        client.recv(4096)
    proxy.restore()
    client.settimeout(5)
    assert client.recv(4096) == b"held"
    client.close()


def test_a_sockets_only_blackhole_lets_plain_requests_through(proxy: NetProxy) -> None:
    upgrade = b"GET /ws/chat/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    socket_client = connect(proxy, upgrade)
    proxy.blackhole(sockets_only=True)
    page = connect(proxy)  # a new plain connection is served
    socket_client.sendall(b"held")
    socket_client.settimeout(0.3)
    with pytest.raises(TimeoutError):
        socket_client.recv(4096)
    assert [c.request for c in proxy.socket_attempts()] == ["GET /ws/chat/ HTTP/1.1"]
    page.close()
    socket_client.close()


def closed_by_peer(client: socket.socket) -> bool:
    """The peer closed: a reset, or a clean end of stream."""
    try:
        return client.recv(4096) == b""
    except ConnectionError:
        return True


def test_a_cut_closes_open_connections_and_refuses_new_ones_until_restored(proxy: NetProxy) -> None:
    client = connect(proxy)
    proxy.cut(refuse=True)
    assert closed_by_peer(client)
    refused = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert closed_by_peer(refused)
    proxy.restore()
    connect(proxy).close()
