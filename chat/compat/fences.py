"""The fence around each patch: the pinned versions it applies to, its switch, its warning (see the package)."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata

logger = logging.getLogger("chat.compat")

OFF = frozenset({"0", "false", "no", "off"})


@functools.cache
def installed_version(distribution: str) -> str:
    """The installed version of ``distribution``, read once per process: a fence is asked on every message a consumer
    dispatches, a read scans site-packages (about 2 ms), and what is installed does not change under a running
    process (an upgrade takes a restart to load)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(not installed)"


@dataclass(frozen=True)
class Fence:
    """One patch of library internals, valid for the pinned versions in ``pins`` only."""

    #: Upper-case name: the switch is ``VIZOCHOK_COMPAT_<NAME>``.
    name: str
    #: Distribution (its name on PyPI) -> the versions whose internals the patch was written and tested against.
    pins: dict[str, frozenset[str]]
    #: What the patch changes, for the warning and the docs.
    summary: str
    _warned: list[bool] = field(default_factory=lambda: [False], compare=False, repr=False)

    @property
    def switch(self) -> str:
        return f"VIZOCHOK_COMPAT_{self.name}"

    def unknown_versions(self) -> dict[str, str]:
        """Each patched distribution installed at a version the patch does not know (or not installed at all)."""
        found: dict[str, str] = {}
        for distribution, versions in self.pins.items():
            version = installed_version(distribution)
            if version not in versions:
                found[distribution] = version
        return found

    def switched_off(self) -> bool:
        return os.environ.get(self.switch, "").strip().lower() in OFF

    def active(self) -> bool:
        """Whether the patch applies here: not switched off, and every patched library at a version it knows."""
        if self.switched_off():
            return False
        unknown = self.unknown_versions()
        if not unknown:
            return True
        if not self._warned[0]:
            self._warned[0] = True
            logger.warning(
                "%s: %s not the version%s this patch was tested against (%s); the library's own behaviour applies (%s)",
                self.switch,
                ", ".join(f"{name} {version}" for name, version in sorted(unknown.items())),
                "s" if len(self.pins) > 1 else "",
                ", ".join(f"{name} {'/'.join(sorted(v))}" for name, v in sorted(self.pins.items())),
                self.summary,
            )
        return False


#: Every fence, by name (each module of this package adds its own when imported).
FENCES: dict[str, Fence] = {}


def fence(name: str, pins: dict[str, set[str]], summary: str) -> Fence:
    made = Fence(name, {distribution: frozenset(versions) for distribution, versions in pins.items()}, summary)
    FENCES[name] = made
    return made
