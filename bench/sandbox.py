"""The sandbox upstream with the benchmark's replies: ``python -m bench.sandbox --port 0 --pace 0 …``.

It takes every flag of ``python -m chat.sandbox.server`` and prints its URL once bound; ``manage.py bench_relay``
starts it as its upstream. See :mod:`bench.sandbox_replies` for what it answers.
"""

from __future__ import annotations

from bench.sandbox_replies import bench_reply
from chat.sandbox.server import main

if __name__ == "__main__":
    main(reply_hook=bench_reply, description="Run the sandbox upstream with the benchmark's replies.")
