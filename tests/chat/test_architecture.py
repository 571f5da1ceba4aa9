"""The tree shows the architecture: dependencies point one way and no modules or packages import each other in a
circle.

protocol (``chat.vizochok``) ← turn engine (``chat.turns``) ← entry points (``chat.web``); the data layer
(``chat.persistence``: store, turn claims, the async database path), the feed and presentation sit beside the flow
and import neither the engine nor the entry points. Operations (``chat.ops``) sit under them: process identity,
per-loop objects, limits, metrics. Under them all, the fenced patches of library internals (``chat.compat``) import
nothing of ``chat``; the protocol layer imports nothing of ``chat`` but its own package and the Django-free
websockets patch. Every import counts, also those inside functions (a deferred import hides a cycle, it does not
remove it). Async code reaches the database through one path (``chat.persistence.db.call``).
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
    "chat.ops": {"chat.web", "chat.turns", "chat.feed", "chat.presentation", "chat.persistence", "chat.models"},
    "chat.turns": {"chat.web"},
    "chat.models": {"chat.turns", "chat.web", "chat.feed", "chat.presentation", "chat.ops", "chat.persistence"},
}


#: Package -> the only modules of ``chat`` outside it that it may import (anything else of ``chat`` is forbidden).
ONLY = {
    "chat.compat": set(),
    "chat.vizochok": {"chat.compat", "chat.compat.fences", "chat.compat.websockets_frames"},
    # The data layer: the models, the frames it stores, and the bottom helpers it needs (the owner token of a
    # claimed turn, the turn limits that make a busy flag stale, the per-loop batchers of the database path).
    "chat.persistence": {
        "chat.models",
        "chat.vizochok",
        "chat.vizochok.messages",
        "chat.ops.process",
        "chat.ops.limits",
        "chat.ops.loops",
    },
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


def test_the_entry_points_reach_the_turns_through_the_engine_alone() -> None:
    """Tabs, sends, stops, catch-up and shutdown: ``chat.web`` asks ``chat.turns.engine`` and nothing else of the
    turns or the feed (issue 26: the consumer had reached into the relay's tabs, liveness and runner)."""
    wrong = {
        (module, target)
        for module, targets in graph().items()
        if module.startswith("chat.web")
        for target in targets
        if target.startswith(("chat.turns.", "chat.feed.")) and target != "chat.turns.engine"
    }
    assert wrong == set()


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
    assert cycles_in(edges) == []


def test_no_package_import_cycles() -> None:
    """Packages too: a module-level acyclic graph can still tie two packages together (``chat.ops.lifecycle``
    imported the turn engine while the engine imported ``chat.ops``), and then neither can be read, tested or
    moved without the other."""
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        for target in targets - {"chat"}:
            if package_of(target) != package_of(module):
                edges.setdefault(package_of(module), set()).add(package_of(target))
    assert cycles_in(edges) == []


def package_of(module: str) -> str:
    """``chat.turns`` for ``chat.turns.engine``; a top-level module (``chat.models``) is a package of its own."""
    return ".".join(module.split(".")[:2])


def cycles_in(edges: dict[str, set[str]]) -> list[list[str]]:
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
    return cycles


#: Django's async methods that run database work through their own ``sync_to_async`` (queryset, model, auth).
DJANGO_ASYNC_DB = frozenset(
    {
        "aget", "acreate", "aget_or_create", "aupdate_or_create", "abulk_create", "abulk_update", "acount",
        "ain_bulk", "aiterator", "alatest", "aearliest", "afirst", "alast", "aaggregate", "aexists", "acontains",
        "aupdate", "adelete", "aexplain", "asave", "arefresh_from_db", "auser", "ahas_perm", "ahas_perms",
        "ahas_module_perms", "aget_all_permissions", "aauthenticate", "alogin", "alogout", "aget_user",
    }
)  # fmt: skip


def own_database_trips(source: str) -> list[str]:
    """Where ``source`` takes work to a thread itself instead of through ``chat.persistence.db.call``.

    ``database_sync_to_async`` and Django's async database methods always go to the database thread, outside the
    batching, the retries and the departed-shopper check of the one path. ``sync_to_async`` is allowed only as a
    call with ``thread_sensitive=False``: work that must not queue on the database thread (a cache, a Redis ping),
    which therefore cannot be database work of this process's connections.
    """
    tree = ast.parse(source)
    off_thread = {
        id(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and any(
            k.arg == "thread_sensitive" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        )
    }
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            name, attribute = node.id, False
        elif isinstance(node, ast.Attribute):
            name, attribute = node.attr, True
        else:
            continue
        if name in {"database_sync_to_async", "SyncToAsync"}:
            found.append((node.lineno, name))
        elif name == "sync_to_async" and id(node) not in off_thread:
            found.append((node.lineno, f"{name} on the database thread"))
        elif name in DJANGO_ASYNC_DB and attribute:
            found.append((node.lineno, f".{name}()"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_async_code_reaches_the_database_through_one_path() -> None:
    files = [p for p in CHAT.rglob("*.py") if "migrations" not in p.parts]
    stray = {
        module_name(path): trips
        for path in files
        if not module_name(path).startswith("chat.persistence") and (trips := own_database_trips(path.read_text()))
    }
    assert stray == {}


def test_the_database_path_check_sees_every_way_around_it() -> None:
    source = """
from channels.db import database_sync_to_async
from asgiref.sync import sync_to_async

@database_sync_to_async
def load(pk): ...

async def view(request):
    user = await request.auser()
    rows = await sync_to_async(list)(Message.objects.all())
    hit = await sync_to_async(cache.get, thread_sensitive=False)("key")
    return await Conversation.objects.filter(pk=1).afirst()
"""
    assert own_database_trips(source) == [
        "5: database_sync_to_async",
        "9: .auser()",
        "10: sync_to_async on the database thread",
        "12: .afirst()",
    ]


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
