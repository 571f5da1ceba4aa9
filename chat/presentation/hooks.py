"""The page's hooks as ``static/chat/hooks.js`` declares them, for the templates that write them.

hooks.js is the one declaration: the page's scripts import it, and the templates write its ids, ``data-item`` and
``data-action`` values through ``{% hook %}`` and ``{% hook_value %}`` (chat.templatetags.chat_tags), which read them
from here. A hook renamed in hooks.js is renamed on the page with it; a template naming a hook hooks.js does not
declare fails when it is compiled (tests/chat/test_hooks.py compiles every template of the page, and checks that no
template spells one of these itself). The file is read as the static files are: from the source folders, else from
the collected files.
"""

from __future__ import annotations

import functools
import re

from django.core.exceptions import ImproperlyConfigured

from chat.ops.staticfiles import read_static

HOOKS_JS = "chat/hooks.js"

#: The groups a template writes through ``{% hook %}``, and the attribute each group's values go in.
ATTRIBUTES = {"ID": "id", "ITEM": "data-item", "ACTION": "data-action"}

# hooks.js's declarations are plain ``export const NAME = Object.freeze({key: "value", // why``; a block in any
# other shape is not read here (and tests/chat/test_hooks.py fails on it).
_BLOCK = re.compile(r"^export const (\w+) = Object\.freeze\(\{(.*?)^\}\);", re.DOTALL | re.MULTILINE)
_ENTRY = re.compile(r'^\s*(\w+): "([^"]*)",', re.MULTILINE)


class UnknownHook(LookupError):
    """A name that hooks.js does not declare, or whose group templates do not write through ``{% hook %}``."""


@functools.cache
def declared() -> dict[str, dict[str, str]]:
    """Every ``Object.freeze({...})`` group of hooks.js: its keys and values, read once per process (a development
    server restarts when hooks.js changes: chat.apps)."""
    text = read_static(HOOKS_JS)
    if text is None:
        raise ImproperlyConfigured(f"static file {HOOKS_JS} not found: the page's hooks are declared there")
    return {name: dict(_ENTRY.findall(body)) for name, body in _BLOCK.findall(text)}


def value(name: str) -> str:
    """The value hooks.js gives ``name`` (``"ID.log"`` is ``"chat-log"``)."""
    group, _, key = name.partition(".")
    if group not in ATTRIBUTES:
        raise UnknownHook(f"{name!r}: templates write only {', '.join(sorted(ATTRIBUTES))} hooks through this tag")
    try:
        return declared()[group][key]
    except KeyError:
        raise UnknownHook(f"{name!r} is not declared in static/chat/hooks.js") from None


def attribute(name: str) -> tuple[str, str]:
    """The attribute ``name`` is written as, and its value: ``"ITEM.user"`` is ``("data-item", "user")``."""
    found = value(name)
    return ATTRIBUTES[name.partition(".")[0]], found
