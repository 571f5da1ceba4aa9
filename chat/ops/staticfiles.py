"""Static files in production: compressed, hashed names, and our ES module imports rewritten to the hashed names.

The page's script is a set of ES modules (static/chat/main.js imports the others). Without the rewrite, main.js would
be served under its hashed name but would import ``./hooks.js`` under the plain one, which is cached briefly and
may belong to the previous deploy for a while. Only our own modules are rewritten: Django's rewrite applied to every
``*.js`` misreads third-party files (django-htmx's extensions mention ``htmx`` in import-like comments).
"""

from __future__ import annotations

import functools
import logging
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage, staticfiles_storage
from django.core.files.base import ContentFile
from django.http import HttpRequest, HttpResponse
from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger("chat.ops.staticfiles")


class StaticFilesStorage(CompressedManifestStaticFilesStorage):  # type: ignore[misc]  # whitenoise is untyped
    patterns = (
        *CompressedManifestStaticFilesStorage.patterns,
        # Django's own ES module rules (the ones its support_js_module_import_aggregation switch adds), for our files.
        ("chat/*.js", ManifestStaticFilesStorage._js_module_import_aggregation_patterns[1]),  # type: ignore[attr-defined]
    )

    def post_process(self, paths: dict[str, Any], dry_run: bool = False, **options: Any) -> Any:
        """First write the page's modules as one file (:func:`bundle`), so it is hashed and compressed with the rest.

        A module the bundler cannot take leaves the page on its modules one by one (a warning, not a failed deploy).
        """
        if not dry_run:
            for entry, target in BUNDLES.items():
                try:
                    text = bundle(entry, lambda path: _collected(self, path))
                except BundleError as exc:
                    logger.warning("the page's modules are served one by one: %s", exc)
                    if self.exists(target):
                        self.delete(target)
                    continue
                if self.exists(target):
                    self.delete(target)
                self._save(target, ContentFile(text.encode("utf-8")))
                paths[target] = (self, target)
        yield from super().post_process(paths, dry_run=dry_run, **options)


def _collected(storage: StaticFilesStorage, path: str) -> str | None:
    if not storage.exists(path):
        return None
    with storage.open(path) as handle:
        return bytes(handle.read()).decode("utf-8")


def page_script(entry: str) -> tuple[str, list[str]]:
    """The script the page loads for ``entry`` and the modules it preloads: the bundle alone where collectstatic
    made one (production), else the entry and its whole graph (development, or a module the bundler refused)."""
    target = BUNDLES.get(entry)
    if target is not None and not settings.DEBUG and _has_bundle(target):
        return target, []
    return entry, module_graph(entry)


@functools.cache
def _has_bundle(target: str) -> bool:
    try:
        return bool(staticfiles_storage.exists(target) and staticfiles_storage.url(target))
    except ValueError:  # the manifest does not name it
        return False


#: ``import … from "./x.js"``, ``import "./x.js"`` and ``export … from "./x.js"``: the static imports of our modules
#: (relative specifiers only; the page imports nothing by bare name).
_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^"';]*?["'](\.{1,2}/[^"']+\.js)["']""", re.MULTILINE)


def module_graph(entry: str) -> list[str]:
    """Every module ``entry`` (a static path such as ``chat/main.js``) imports, directly or not, in first-seen order.

    The page preloads them all (``<link rel=modulepreload>``) so the browser fetches the graph in one round trip
    instead of one per level of imports (issue 22: three levels cost 0.45 s on a 150 ms network). Read from the
    source files at the first render after a start, so the list can never go stale by hand.
    """
    if settings.DEBUG:
        return _graph(entry)
    return list(_cached_graph(entry))


@functools.cache
def _cached_graph(entry: str) -> tuple[str, ...]:
    return tuple(_graph(entry))


def _graph(entry: str) -> list[str]:
    seen: dict[str, None] = {}
    pending = [entry]
    while pending:
        path = pending.pop(0)
        source = read_static(path)
        if source is None:
            continue
        for specifier in _IMPORT.findall(source):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), specifier))
            if target != entry and target not in seen:
                seen[target] = None
                pending.append(target)
    return list(seen)


def read_static(path: str) -> str | None:
    """A static file's text (a module, hooks.js): from the source folders, else from the collected files (a deploy may
    ship only those); None where neither has it."""
    found = finders.find(path)
    if found:
        return Path(str(found)).read_text(encoding="utf-8")
    if staticfiles_storage.exists(path):
        with staticfiles_storage.open(path) as handle:
            return bytes(handle.read()).decode("utf-8")
    return None


# --- one file for the page's modules ---------------------------------------------------------------------------------

#: Where the page's modules go as one file at collectstatic (next to them, so it is hashed and compressed like them).
BUNDLES = {"chat/main.js": "chat/main.bundle.js"}


class BundleError(ValueError):
    """A module uses a form the bundler does not rewrite; the page then loads the modules one by one."""


_IMPORT_STATEMENT = re.compile(
    r"""^import\s+(?:(?P<clause>[^;"']+?)\s+from\s+)?["'](?P<spec>[^"']+)["']\s*;?[ \t]*$""", re.M
)
_EXPORT_DECLARATION = re.compile(r"^export\s+(?P<kind>(?:async\s+)?function\*?|const|class)\s+(?P<name>[\w$]+)", re.M)
_EXPORT_LIST = re.compile(r"^export\s*\{(?P<names>[^}]*)\}\s*;?[ \t]*$", re.M)
_LEFTOVER = re.compile(r"^\s*(?:import|export)\b|\bimport\s*\(|\bimport\.meta\b", re.M)


def bundle(entry: str, read: Callable[[str], str | None] | None = None) -> str:
    """The modules of ``entry``'s graph as one ES module: each module's body in a function of its own, in the order
    the browser evaluates them (depth first, in import order), its exports returned as a frozen object.

    Issue 22: 18 modules over a phone network's 6 connections per host cost four round trips before the socket
    opened. This is not a general bundler: it takes the forms the page's modules use (named and namespace imports
    of relative paths, ``export function|const|class`` and ``export { … }``) and refuses anything else
    (:class:`BundleError`), so a module that needs more is noticed instead of miscompiled.
    """
    read = read or read_static
    order: list[str] = []
    sources: dict[str, str] = {}

    def visit(path: str, trail: tuple[str, ...]) -> None:
        if path in sources:
            if path not in order:
                raise BundleError(f"import cycle: {' -> '.join((*trail, path))}")
            return
        text = read(path)
        if text is None:
            raise BundleError(f"{path} not found")
        sources[path] = text
        for match in _IMPORT_STATEMENT.finditer(text):
            visit(_resolve(path, match["spec"]), (*trail, path))
        order.append(path)

    visit(entry, ())
    parts = ["// Generated at collectstatic from " + entry + " (chat/ops/staticfiles.py bundle); do not edit."]
    for path in order:
        parts.append(_wrapped(path, _without_comments(sources[path]), entry=path == entry))
    return "\n".join(parts) + "\n"


def _resolve(importer: str, specifier: str) -> str:
    if not specifier.startswith(("./", "../")):
        raise BundleError(f"{importer}: only relative imports are bundled, not {specifier!r}")
    return posixpath.normpath(posixpath.join(posixpath.dirname(importer), specifier))


def _binding(path: str) -> str:
    return "__module_" + re.sub(r"\W", "_", path)


def _wrapped(path: str, text: str, *, entry: bool) -> str:
    def imported(match: re.Match[str]) -> str:
        source = _binding(_resolve(path, match["spec"]))
        clause = (match["clause"] or "").strip()
        if not clause:
            return ""
        if clause.startswith("*"):
            name = re.fullmatch(r"\*\s+as\s+([\w$]+)", clause)
            if not name:
                raise BundleError(f"{path}: cannot bundle `import {clause}`")
            return f"const {name[1]} = {source};"
        names = re.fullmatch(r"\{([^}]*)\}", clause)
        if not names:
            raise BundleError(f"{path}: cannot bundle `import {clause}` (default imports are not supported)")
        pairs = [_pair(part) for part in names[1].split(",") if part.strip()]
        return "const { " + ", ".join(f"{a}: {b}" if a != b else a for a, b in pairs) + " } = " + source + ";"

    exports: list[tuple[str, str]] = []

    def declared(match: re.Match[str]) -> str:
        exports.append((match["name"], match["name"]))
        return f"{match['kind']} {match['name']}"

    def listed(match: re.Match[str]) -> str:
        exports.extend((b, a) for a, b in (_pair(part) for part in match["names"].split(",") if part.strip()))
        return ""

    body = _IMPORT_STATEMENT.sub(imported, text)
    body = _EXPORT_DECLARATION.sub(declared, body)
    body = _EXPORT_LIST.sub(listed, body)
    if _LEFTOVER.search(_without_comments(body)):
        raise BundleError(f"{path}: an import or export form the bundler does not rewrite")
    if entry:
        return f"// {path}\n{{\n{body}\n}}"
    returned = ", ".join(f"{name}: {local}" if name != local else name for name, local in exports)
    return f"// {path}\nconst {_binding(path)} = (() => {{\n{body}\nreturn Object.freeze({{ {returned} }});\n}})();"


def _pair(part: str) -> tuple[str, str]:
    """``a`` or ``a as b`` -> (a, b)."""
    words = part.split()
    if len(words) == 1:
        return words[0], words[0]
    if len(words) == 3 and words[1] == "as":
        return words[0], words[2]
    raise BundleError(f"cannot bundle the name list entry {part.strip()!r}")


#: Comments that begin a line (a block comment, or a line comment): the bytes a phone need not fetch, and words a
#: statement pattern must not read. A comment after code on its line is left, as is anything inside a string.
_COMMENT_LINES = re.compile(r"^[ \t]*/\*.*?\*/[ \t]*\n|^[ \t]*//[^\n]*\n", re.S | re.M)


def _without_comments(text: str) -> str:
    return _COMMENT_LINES.sub("", text)


@functools.lru_cache(maxsize=1)
def _favicon() -> bytes:
    return (Path(settings.BASE_DIR) / "static" / "chat" / "favicon.ico").read_bytes()


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: browsers ask the site's root for it whatever the page says; a 404 there fills the logs."""
    response = HttpResponse(_favicon(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
