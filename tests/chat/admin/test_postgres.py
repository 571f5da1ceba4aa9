"""The admin's search, the turn records and the insights on PostgreSQL.

The suite's database is SQLite; these modules run a second time in a subprocess whose ``DATABASE_URL`` names a
PostgreSQL database (pytest-django creates ``test_<name>`` and drops it afterwards), because their SQL is written by
hand in places (the search column's append, ``INSERT … VALUES`` with subqueries, window functions) and the two
databases differ exactly there: case folding, parameter types, JSON.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.processes import port_open

ROOT = Path(__file__).resolve().parents[3]
MODULES = ("test_search.py", "test_recording.py", "test_insights.py")


@pytest.mark.postgres
def test_search_records_and_insights_on_postgresql() -> None:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"vizochok_admin_{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
        "VIZOCHOK_EXPECT_DB_VENDOR": "postgresql",
    }
    here = Path(__file__).parent.relative_to(ROOT)
    result = subprocess.run(
        # -n 0: in this process, not in workers of its own (pytest.ini runs the suite in parallel workers).
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            *(str(here / module) for module in MODULES),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1], result.stdout[-2000:]
