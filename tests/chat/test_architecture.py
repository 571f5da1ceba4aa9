"""The tree shows the architecture: dependencies point one way and no modules import each other in a circle.

protocol (``chat.vizochok``) ← turn engine (``chat.turns``) ← entry points (``chat.web``); the feed, presentation,
store and operations sit beside the flow and import neither the engine nor the entry points. Under them all, the
fenced patches of library internals (``chat.compat``) import nothing of ``chat``; the protocol layer imports nothing
of ``chat`` but its own package and the Django-free websockets patch. Every import counts, also those inside
functions (a deferred import hides a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

CHAT = Path(__file__).resolve().parents[2] / "chat"

#: Package -> packages of ``chat`` it must not import.
FORBIDDEN = {
    "chat.vizochok": {"chat.turns", "chat.web", "chat.feed", "chat.presentation", "chat.ops", "chat.sandbox"},
    "chat.sandbox": {"chat.turns", "chat.web", "chat.feed", "chat.presentation", "chat.ops"},
    "chat.feed": {"chat.turns", "chat.web"},
    "chat.presentation": {"chat.turns", "chat.web", "chat.feed"},
    "chat.ops": {"chat.web"},
    "chat.turns": {"chat.web"},
    "chat.models": {"chat.turns", "chat.web", "chat.feed", "chat.presentation", "chat.ops"},
    "chat.store": {"chat.turns", "chat.web", "chat.feed", "chat.presentation"},
}


#: Package -> the only modules of ``chat`` outside it that it may import (anything else of ``chat`` is forbidden).
ONLY = {
    "chat.compat": set(),
    "chat.vizochok": {"chat.compat", "chat.compat.fences", "chat.compat.websockets_frames"},
    # The browser's wire format: what the text of a frame says, read without the database, the consumer or Django.
    "chat.web.frames": {"chat.web", "chat.web.numbers", "chat.vizochok.messages"},
}

#: Modules that import no Django and no Channels: read and tested without settings, shared with plain Python.
DJANGO_FREE = {"chat.web.frames", "chat.web.numbers", "chat.vizochok.messages"}


def module_name(path: Path) -> str:
    parts = path.relative_to(CHAT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = [p for p in CHAT.rglob("*.py") if "migrations" not in p.parts]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in files}


def test_no_module_imports_what_it_must_not() -> None:
    wrong = [
        (module, target)
        for module, targets in graph().items()
        for target in targets
        for owner, forbidden in FORBIDDEN.items()
        if (module == owner or module.startswith(owner + "."))
        and any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert wrong == []


def test_the_bottom_layers_import_only_what_they_may() -> None:
    wrong = [
        (module, target)
        for module, targets in graph().items()
        for owner, allowed in ONLY.items()
        if module == owner or module.startswith(owner + ".")
        for target in targets
        if target != "chat" and not (target == owner or target.startswith(owner + ".")) and target not in allowed
    ]
    assert wrong == []


def test_the_relay_reaches_the_sandbox_through_one_seam() -> None:
    """The embedded sandbox (no ``VIZOCHOK_WS_URL``) is started by ``chat.turns.upstream``; nothing else uses it
    but the command that runs it alone."""
    users = {
        module
        for module, targets in graph().items()
        if not module.startswith("chat.sandbox") and any(t.startswith("chat.sandbox") for t in targets)
    }
    assert users == {"chat.turns.upstream", "chat.management.commands.vizochok_sandbox"}


def test_no_import_cycles() -> None:
    edges = {module: {t for t in targets if t != "chat"} for module, targets in graph().items()}
    # Package __init__ modules are namespaces here (they import nothing of their own package).
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_wire_formats_import_no_django() -> None:
    """The browser's frames and the upstream's messages are plain Python (``DJANGO_FREE``), like the protocol they
    describe: a parser that needed settings could not be used by the sandbox, the benchmark or a quick script."""
    wrong = []
    for module in DJANGO_FREE:
        path = CHAT.parent / (module.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            wrong += [(module, name) for name in names if name.split(".")[0] in {"django", "channels", "daphne"}]
    assert wrong == []
