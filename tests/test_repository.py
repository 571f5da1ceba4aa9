"""The repository is self-contained: no tracked file points at documents outside it.

The UI contract and the protocol notes used to live in a folder beside the checkout; a newcomer with only this
repository could not follow those references. The contract is ``docs/ui-contract.md`` now.
"""

from __future__ import annotations

import re
import subprocess

from tests.processes import ROOT

# Built from parts so this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + "shared" + r"\b|\b" + "shared" + r"/[\w.-]+\.md\b")
SKIPPED_SUFFIXES = (".png", ".ico", ".woff2", ".mo", ".sqlite3")


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if not name.endswith(SKIPPED_SUFFIXES)]


def test_the_pattern_finds_what_it_should() -> None:
    folder = "shar" + "ed"
    assert OUTSIDE.search(f"see ../{folder}/ui-contract.md")
    assert OUTSIDE.search(f"({folder}/vizochok-protocol.md)")
    assert not OUTSIDE.search("docs/ui-contract.md, a shared/ folder of the admin's own")


def test_no_tracked_file_points_outside_the_repository() -> None:
    offenders = []
    for name in tracked_files():
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}:{text.count(chr(10), 0, match.start()) + 1}" for match in OUTSIDE.finditer(text)]
    assert not offenders, f"references to documents outside the repository: {offenders}"
