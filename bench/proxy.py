"""The floor for a Python relay: a bare WebSocket pass-through written with ``websockets`` alone.

Each accepted socket gets its own upstream socket and every frame is copied both ways unchanged: no parsing, no
database, no templates, no channel layer. What the real relay costs on top of this is what ``manage.py
bench_relay`` reports. Neither leg is compressed, exactly like the relay (Daphne negotiates no
compression with browsers, and the relay's upstream client offers none by default), so both paths put the same
bytes on the wire.

Run alone: ``python -m bench.proxy --upstream ws://127.0.0.1:8765/api/v1/ws/chat`` prints its URL once bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

#: Above the protocol's 64 KB frame limit, like the relay's own read limit.
MAX_SIZE = 1 << 20


async def _pump(source: ServerConnection | ClientConnection, sink: ServerConnection | ClientConnection) -> None:
    """Copy frames until ``source`` closes; ends by itself when either side goes away."""
    with contextlib.suppress(ConnectionClosed):
        async for frame in source:
            await sink.send(frame)


async def _handle(browser: ServerConnection, upstream_url: str) -> None:
    try:
        upstream = await connect(upstream_url, ping_interval=None, max_size=MAX_SIZE, compression=None)
    except (OSError, ConnectionClosed):
        await browser.close(1011, "upstream unavailable")
        return
    async with upstream:
        tasks = [asyncio.create_task(_pump(browser, upstream)), asyncio.create_task(_pump(upstream, browser))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await browser.close()


async def run_proxy(upstream_url: str, port: int = 0) -> None:
    """Serve on 127.0.0.1 until cancelled; prints the proxy URL (same path as the upstream) once bound."""
    path = "/" + upstream_url.split("/", 3)[3] if upstream_url.count("/") >= 3 else "/"
    async with serve(
        lambda ws: _handle(ws, upstream_url),
        "127.0.0.1",
        port,
        ping_interval=None,
        max_size=MAX_SIZE,
        compression=None,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{bound}{path}", flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Bare WebSocket pass-through proxy (the benchmark's floor).")
    parser.add_argument("--upstream", required=True, help="upstream ws:// URL")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_proxy(args.upstream, args.port))


if __name__ == "__main__":
    main()
