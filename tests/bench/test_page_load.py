"""``manage.py bench_load`` at a tiny scale: it starts the app as deployed, loads the page throttled, reports."""

from __future__ import annotations

import io
import re
import shutil

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.browser


def test_bench_load_measures_a_cold_load_on_both_networks() -> None:
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    out, err = io.StringIO(), io.StringIO()
    call_command("bench_load", "--loads", "1", "--configs", "production", stdout=out, stderr=err)
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| production |")]
    assert [row.split("|")[2].split("(")[0].strip() for row in rows] == ["Slow 4G", "3G"]
    for row in rows:
        ready, requests = re.search(r"\| ([\d.]+) s \|.*\| (\d+) \| ≤", row).groups()  # type: ignore[union-attr]
        assert 0 < float(ready) < 30 and 0 < int(requests) <= 10, row  # one file for the modules, not one each
    assert "console error" not in err.getvalue(), err.getvalue()
