"""Real server processes for tests: a free loopback port, waiting for it to listen, and a Daphne app process.

The browser tests and the production tests both run the app exactly as it runs in production, under Daphne in a
subprocess; this is the one place that knows how.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, describe: str = "the server") -> None:
    """Wait until ``process`` listens on ``port``; fail at once if it exits."""
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise RuntimeError(f"{describe} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{describe} did not start listening")
        # Polling a port has no event to await; the loop is bounded by the deadline.
        time.sleep(0.05)


class Daphne:
    """One app process, as in production: ``daphne -b 127.0.0.1 -p PORT vizochok_site.asgi:application``."""

    def __init__(self, name: str, log_path: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.name = name
        #: Extra daphne options, e.g. ``("--proxy-headers",)`` as behind a reverse proxy.
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def migrate(self) -> None:
        migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
        subprocess.run(migrate, cwd=ROOT, env=self.env, check=True, capture_output=True)

    def launch(self) -> None:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), *self.args]
        command.append("vizochok_site.asgi:application")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.process, 30, describe=self.name)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(15)

    def terminate(self) -> int:
        """SIGTERM (a deploy): the graceful shutdown path; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
