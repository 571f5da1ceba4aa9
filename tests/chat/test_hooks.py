"""The page's hooks (``static/chat/hooks.js``) against the templates that write them and the scripts that read them.

Every id, class, data-* and selector the scripts read is declared in hooks.js; each declared one is written by a
template of the chat page, or is made by the script and declared so (``MADE_BY_SCRIPT``). The page's scripts spell
no hook themselves: no literal ``[data-`` selector, id, class selector or ``dataset.name`` outside hooks.js.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import TemplateSyntaxError, engines

from chat.presentation import hooks

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static" / "chat"
HOOKS = (STATIC / "hooks.js").read_text()
#: The chat page's templates as written (the demo storefront is a host page: its hooks are its own).
WRITTEN = {
    path: path.read_text()
    for path in sorted((ROOT / "templates" / "chat").rglob("*.html"))
    if path.name != "demo_storefront.html"
}
#: ``{% hook "ITEM.user" %}`` and ``{% hook_value "ID.log" %}`` (chat.templatetags.chat_tags).
HOOK_TAG = re.compile(r"""\{% (hook|hook_value) (["'])(\w+)\.(\w+)\2 %\}""")


def _expanded(match: re.Match[str]) -> str:
    """What the tag itself writes (rendered alone, as the page's templates render it)."""
    return engines["django"].from_string("{% load chat_tags %}" + match.group(0)).render({})


#: The same with every hook tag written out as the page receives it, for the checks below.
TEMPLATES = "\n".join(HOOK_TAG.sub(_expanded, text) for text in WRITTEN.values())
#: Scripts of the chat page that read hooks. early.js runs alone before the modules (it spells its three hooks, as
#: hooks.js says); embed.js and demo_storefront.js run on a storefront's page, not ours.
PAGE_SCRIPTS = sorted(
    path for path in STATIC.glob("*.js") if path.name not in {"hooks.js", "early.js", "embed.js", "demo_storefront.js"}
)


def declared(name: str) -> dict[str, str]:
    """``export const NAME = Object.freeze({key: "value", ...})`` of hooks.js, comments dropped."""
    block = re.search(rf"export const {name} = Object\.freeze\(([{{\[].*?[}}\]])\);", HOOKS, re.DOTALL)
    assert block, name
    body = re.sub(r"//[^\n]*", "", block.group(1))
    if body.startswith("["):
        return {value: value for value in re.findall(r'"([^"]*)"', body)}
    return dict(re.findall(r'(\w+): "([^"]*)"', body))


MADE = set(declared("MADE_BY_SCRIPT"))


def kebab(key: str) -> str:
    return "data-" + "".join(f"-{char.lower()}" if char.isupper() else char for char in key)


def has_attribute(name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?=[=\s>{{]|$)", TEMPLATES, re.MULTILINE) is not None


#: Every class attribute's value (template tags inside one may hold quotes of their own).
CLASSES = " ".join(re.findall(r'\bclass="((?:[^"{]|\{[%{].*?[%}]\})*)"', TEMPLATES))


def has_class(name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", CLASSES) is not None


def has_value(attribute: str, value: str) -> bool:
    return f'{attribute}="{value}"' in TEMPLATES


def test_hooks_js_declares_what_this_test_reads() -> None:
    for name in ("ID", "ITEM", "ATTR", "DATA", "ACTION", "CHAT_DATA", "CLASS", "SEL", "MADE_BY_SCRIPT"):
        assert declared(name), name


@pytest.mark.parametrize("value", declared("ID").values())
def test_every_id_is_written_by_a_template(value: str) -> None:
    assert has_value("id", value) or value in MADE


@pytest.mark.parametrize("value", declared("ITEM").values())
def test_every_item_is_written_by_a_template(value: str) -> None:
    assert has_value("data-item", value)


@pytest.mark.parametrize("name", declared("ATTR").values())
def test_every_attribute_is_written_by_a_template_or_the_script(name: str) -> None:
    assert has_attribute(name) or name in MADE


@pytest.mark.parametrize("key", [*declared("DATA").values(), *declared("CHAT_DATA").values()])
def test_every_data_key_is_written_by_a_template_or_the_script(key: str) -> None:
    assert has_attribute(kebab(key)) or kebab(key) in MADE


@pytest.mark.parametrize("value", declared("ACTION").values())
def test_every_action_is_written_by_a_template_or_the_script(value: str) -> None:
    assert has_value("data-action", value) or f"data-action={value}" in MADE


@pytest.mark.parametrize("name", declared("CLASS").values())
def test_every_class_is_written_by_a_template_or_the_script(name: str) -> None:
    assert has_class(name) or name in MADE


@pytest.mark.parametrize(("key", "selector"), declared("SEL").items())
def test_every_part_of_every_selector_is_written(key: str, selector: str) -> None:
    """A selector's classes, ids and attributes (with their values) each occur in a template, or are made."""
    assert selector.strip()
    for name in re.findall(r"\.([\w-]+)", selector):
        assert has_class(name) or name in MADE, (key, name)
    for name in re.findall(r"#([\w-]+)", selector):
        assert has_value("id", name), (key, name)
    for name, value in re.findall(r'\[([\w-]+)(?:="?([^\]"]*)"?)?\]', selector):
        if value:
            assert has_value(name, value) or f"{name}={value}" in MADE, (key, name, value)
        else:
            assert has_attribute(name) or name in MADE, (key, name)


def test_what_is_made_by_the_script_is_not_also_in_a_template() -> None:
    """A hook a template writes belongs to the template's list, not to MADE_BY_SCRIPT (it would hide a removal)."""
    written = {
        made
        for made in MADE
        if (made.startswith("data-") and "=" not in made and has_attribute(made))
        or ("=" in made and has_value(*made.split("=", 1)))
        or (not made.startswith("data-") and (has_class(made) or has_value("id", made)))
    }
    assert written == set()


#: What a page script may not spell: a data-* selector, an id or a class in a selector, an id it looks up, a dataset
#: key, a class it builds with. Each goes through hooks.js.
BYPASSES = {
    "a [data- selector": re.compile(r"""["'`][^"'`\n]*\[data-"""),
    # A name spelled in a selector (`#${ID.log}` and `.${CLASS.sheetCard}` take theirs from hooks.js).
    "an id selector": re.compile(r"""(?:querySelector(?:All)?|closest|matches)\(\s*["'`][^"'`\n]*#[\w-]"""),
    "a class selector": re.compile(r"""(?:querySelector(?:All)?|closest|matches)\(\s*["'`][^"'`\n]*\.[A-Za-z_-]"""),
    "a literal id": re.compile(r"""getElementById\(\s*["'`]"""),
    "a dataset key": re.compile(r"\.dataset\.\w"),
    "a literal class": re.compile(r"""(?:className\s*=|classList\.\w+\()\s*["'`](?!\$\{)"""),
}


def bypasses(line: str) -> list[str]:
    """What ``line`` spells itself; names taken from hooks.js inside a template literal (``${ID.log}``) do not count,
    but a dataset key does wherever it is."""
    spelled = re.sub(r"\$\{[^}]*\}", "${}", line)
    return [what for what, pattern in BYPASSES.items() if pattern.search(line if what == "a dataset key" else spelled)]


def test_the_page_scripts_spell_no_hook_themselves() -> None:
    found = [
        (script.name, number, what)
        for script in PAGE_SCRIPTS
        for number, line in enumerate(script.read_text().splitlines(), start=1)
        if not line.lstrip().startswith(("//", "*", "/*"))
        for what in bypasses(line)
    ]
    assert found == []


@pytest.mark.parametrize("what", BYPASSES)
def test_each_bypass_is_found(what: str) -> None:
    """The patterns above find what they are for (a check that cannot fail checks nothing)."""
    examples = {
        "a [data- selector": 'node.querySelector("[data-action=add]")',
        "an id selector": 'document.querySelector("#chat-log")',
        "a class selector": 'card.closest(".cards__more")',
        "a literal id": 'document.getElementById("chat")',
        "a dataset key": "line.dataset.sku",
        "a literal class": "bubble.className = `msg ${CLASS.outbox}`;",
    }
    assert what in bypasses(examples[what])
    for allowed in (
        "card.querySelector(SEL.quantity).dataset[DATA.step]",
        "node.closest(`#${ID.log}`)",
        "body.querySelector(`.${CLASS.sheetCard}[${ATTR.pending}]`)",
        "bubble.className = `${CLASS.message} ${CLASS.outbox}`;",
    ):
        assert what not in bypasses(allowed), allowed


# --- the templates write ids, item kinds and actions through {% hook %} -----------------------------------------------


def test_python_reads_the_same_declarations_as_this_test() -> None:
    for group in hooks.ATTRIBUTES:
        assert hooks.declared()[group] == declared(group), group


@pytest.mark.parametrize("group", hooks.ATTRIBUTES)
def test_no_template_spells_an_id_an_item_kind_or_an_action_itself(group: str) -> None:
    """Each is written with ``{% hook %}`` (or named with ``{% hook_value %}``), so hooks.js alone decides it."""
    attribute = hooks.ATTRIBUTES[group]
    spelled = [
        (path.name, value)
        for path, text in WRITTEN.items()
        for value in declared(group).values()
        if re.search(rf'(?<![\w-]){attribute}="{re.escape(value)}"', text)
        or (group == "ID" and re.search(rf'="[^"]*#{re.escape(value)}(?![\w-])', text))
        or (group == "ID" and re.search(rf'(?:aria-[\w-]+|for)="{re.escape(value)}"', text))
    ]
    assert spelled == []


def test_an_element_swapped_by_its_id_takes_the_id_from_hooks_js() -> None:
    """htmx swaps an out-of-band element into the page's element of the same id: the id spelled in two templates
    would part silently on a rename, so it is written with ``{% hook "ID..." %}`` (or is per-message, ``{{ }}``)."""
    tags = [(path.name, tag) for path, text in WRITTEN.items() for tag in re.findall(r"<[a-z][^<>]*>", text)]
    spelled = [
        (name, tag) for name, tag in tags if 'hx-swap-oob="true"' in tag and re.search(r'(?<![\w-])id="[^"{]', tag)
    ]
    assert spelled == []


def test_every_hook_tag_names_a_declared_hook() -> None:
    """A misspelt name fails when the template is compiled: every template of the page compiles."""
    engine = engines["django"]
    for path in WRITTEN:
        engine.get_template(str(path.relative_to(ROOT / "templates")))  # raises TemplateSyntaxError on a bad name
    assert HOOK_TAG.search("\n".join(WRITTEN.values()))


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ('{% hook "ITEM.user" %}', 'data-item="user"'),
        ('{% hook "ID.log" %}', 'id="chat-log"'),
        ("{% hook_value 'ID.cartPanel' %}", "cart-panel"),
        ('{% hook "ACTION.rateReason" %}', 'data-action="rate-reason"'),
    ],
)
def test_the_hook_tags_write_the_declared_value(source: str, rendered: str) -> None:
    assert engines["django"].from_string("{% load chat_tags %}" + source).render({}) == rendered


@pytest.mark.parametrize(
    "source",
    ['{% hook "ITEM.nothing" %}', '{% hook "ATTR.seq" %}', "{% hook ID.log %}", '{% hook_value "ID" %}', "{% hook %}"],
)
def test_an_undeclared_or_misspelt_hook_fails_the_compilation(source: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        engines["django"].from_string("{% load chat_tags %}" + source)


def test_every_action_a_selector_names_is_declared() -> None:
    """SEL spells ``[data-action=add]``; the value is ACTION's, which the templates write."""
    named = {value for selector in declared("SEL").values() for value in re.findall(r"data-action=([\w-]+)", selector)}
    assert named
    assert named - set(declared("ACTION").values()) == set()
