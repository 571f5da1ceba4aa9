"""Real server processes for tests: a free loopback port, waiting for it to listen, and a Daphne app process.

The browser tests and the production tests both run the app exactly as it runs in production, under Daphne in a
subprocess; this is the one place that knows how. Each app's SQLite file is a copy of one template migrated once per
test run (``manage.py migrate`` costs about 3 s; a copy, milliseconds).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_template: Path | None = None
_static: Path | None = None
_own_folder: Path | None = None


def redis_url() -> str:
    """The Redis database this test process may use: ``VIZOCHOK_TEST_REDIS_URL`` (default db 0) for a run in one
    process; under pytest-xdist, worker ``gwN`` takes the database N numbers after it, so workers never share the
    per-address socket caps or any other key (Redis has 16 databases by default: the numbers wrap there)."""
    base = os.environ.get("VIZOCHOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return base
    head, _, db = base.rstrip("/").rpartition("/")
    if not db.isdigit():
        head, db = base.rstrip("/"), "0"
    return f"{head}/{(int(db) + int(worker[2:])) % 16}"


def migrate_command(env: dict[str, str]) -> None:
    """``manage.py migrate`` for the database ``env`` names (its output only shown when it fails)."""
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    done = subprocess.run(migrate, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")


#: A folder the whole run shares, named by the pytest process that starts the xdist workers (tests/conftest.py).
SHARED_DIR = "VIZOCHOK_TEST_SHARED_DIR"


#: The file in the shared folder naming the run's migrated PostgreSQL template (tests/production/conftest.py).
POSTGRES_TEMPLATE = "postgres-template.name"


def drop_shared_postgres(folder: Path) -> None:
    """Drop the PostgreSQL template a worker made for this run, if one did (the run's end: no worker uses it)."""
    named = folder / POSTGRES_TEMPLATE
    if not named.exists():
        return
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{named.read_text()}" WITH (FORCE)')


def _shared_folder() -> Path:
    """The run's shared folder (tests/conftest.py); outside such a run, one of this process's own, removed at exit."""
    global _own_folder
    shared = os.environ.get(SHARED_DIR)
    if shared:
        return Path(shared)
    if _own_folder is None:
        _own_folder = Path(tempfile.mkdtemp(prefix="vizochok-template-"))
        atexit.register(shutil.rmtree, _own_folder, ignore_errors=True)
    return _own_folder


def made_once(name: str, make: Callable[[Path], None]) -> Path:
    """``name`` in the shared folder, made by ``make`` once per test run on first use.

    The xdist workers share it: the first to need it makes it under a file lock while any other that needs it waits
    (it would otherwise spend the same seconds making its own). It is made under another name and renamed, so the
    name only ever names a whole result.
    """
    folder = _shared_folder()
    path = folder / name
    with (folder / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            building = folder / f"building-{os.getpid()}-{name}"
            make(building)
            os.replace(building, path)
    return path


def sqlite_template() -> Path:
    """A SQLite file with every migration applied, made once per test run on first use."""
    global _template
    if _template is None:

        def make(building: Path) -> None:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "vizochok_site.settings",
                "DATABASE_URL": f"sqlite:///{building}",
            }
            env.pop("REDIS_URL", None)
            migrate_command(env)

        _template = made_once("template.sqlite3", make)
    return _template


#: What an app process needs besides its database to run as deployed (DJANGO_DEBUG=0) on plain HTTP on loopback:
#: a secret, its loopback host names, no redirect to HTTPS (there is no TLS here), and the collected static files.
#: Chromium keeps the Secure session cookie that production sets on http://127.0.0.1 and http://localhost.
DEPLOYED = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "tests-only-secret-key-that-is-long-and-random-enough-0123456789abcdef",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
}


def collected_static() -> Path:
    """``manage.py collectstatic`` as a deploy runs it (hashed names, the page's one bundle, compressed copies), made
    once per test run on first use; an app process serves it when given it as ``DJANGO_STATIC_ROOT``."""
    global _static
    if _static is None:

        def make(building: Path) -> None:
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vizochok_site.settings", **DEPLOYED}
            env["DJANGO_STATIC_ROOT"] = str(building)
            command = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"collectstatic failed ({done.returncode}):\n{done.stdout}{done.stderr}")

        _static = made_once("static", make)
    return _static


def migrated_sqlite(target: Path) -> None:
    """Write a migrated database to ``target`` (SQLite's backup API: a consistent copy whatever its journal mode)."""
    source = sqlite3.connect(sqlite_template())
    destination = sqlite3.connect(target)
    try:
        source.backup(destination)
    finally:
        destination.close()
        source.close()


def migrate(env: dict[str, str]) -> None:
    """Give the database ``env``'s DATABASE_URL names the project's schema: a template's copy for a SQLite file,
    ``migrate`` itself for anything else (the PostgreSQL fixtures create their databases from a migrated template
    and do not call this)."""
    url = env.get("DATABASE_URL", "")
    if url.startswith("sqlite:///"):
        migrated_sqlite(Path(url.removeprefix("sqlite:///")))
    else:
        migrate_command(env)


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
        migrate(self.env)

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
