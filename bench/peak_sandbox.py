"""The peak benchmark's upstream in a process of its own: ``python -m bench.peak_sandbox --events FILE …``.

The sandbox enforcing ``--max-connections`` sockets per key (4029 beyond), every reply taking ``--reply-seconds``.
It prints its URL once bound; on SIGTERM it writes to FILE its socket events (``time.monotonic()``:
CLOCK_MONOTONIC, the same clock in every process of the machine, so the benchmark's clients can line them up with
theirs), its 4029 count, and how many sockets it accepted and how many authenticated (the difference: sockets the
relay opened ahead of a slot and closed unused), then exits. In a process of its own it is not slowed by the
clients it is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from bench.peak_bench import PeakSandbox
from chat.sandbox.server import SandboxConfig


async def serve(args: argparse.Namespace) -> None:
    server = PeakSandbox(
        SandboxConfig(
            tokens_per_second=0.0,
            reply_seconds=args.reply_seconds,
            max_connections_per_key=args.max_connections,
            ping_interval=0.0,
            messages_per_window=10_000,  # the relay keeps the per-socket window itself; the line is under test
        )
    )
    await server.start("127.0.0.1", 0)
    print(server.url, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    written = json.dumps(
        {
            "events": server.events,
            "refused_4029": server.refused_too_many,
            "accepted": server.accepted,
            "authenticated": sum(1 for _at, kind, _socket in server.events if kind == "open"),
            "accept_to_auth": server.accept_to_auth,
        }
    )
    await asyncio.to_thread(Path(args.events).write_text, written)
    await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", required=True, help="file the socket events are written to on SIGTERM")
    parser.add_argument("--reply-seconds", type=float, default=3.0)
    parser.add_argument("--max-connections", type=int, default=3)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
