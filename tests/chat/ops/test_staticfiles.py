"""Production static files: the page's ES modules import each other under their hashed names, and come as one file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from chat.ops import staticfiles

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "chat.ops.staticfiles.StaticFilesStorage"},
}


def test_collectstatic_rewrites_module_imports_to_hashed_names(tmp_path: Path) -> None:
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=STORAGES):
        call_command("collectstatic", "--noinput", verbosity=0)
    hashed = r"main\.[0-9a-f]{12}\.js"
    (main,) = [path for path in (tmp_path / "chat").glob("main.*.js") if re.fullmatch(hashed, path.name)]
    imports = re.findall(r'from "\./([^"]+)"', main.read_text())
    assert imports, "main.js imports the other modules"
    for name in imports:
        assert re.fullmatch(r"\w+\.[0-9a-f]{12}\.js", name), name
        assert (tmp_path / "chat" / name).exists()


def test_collectstatic_makes_one_compressed_file_of_the_page_modules(tmp_path: Path) -> None:
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=STORAGES):
        call_command("collectstatic", "--noinput", verbosity=0)
    hashed = r"main\.bundle\.[0-9a-f]{12}\.js"
    (bundled,) = [p for p in (tmp_path / "chat").glob("main.bundle.*.js") if re.fullmatch(hashed, p.name)]
    text = bundled.read_text()
    assert (tmp_path / "chat" / (bundled.name + ".gz")).exists()
    assert not re.search(r"^\s*(import|export)\b", text, re.M), "no module statement is left"
    for module in staticfiles.module_graph("chat/main.js"):
        assert f"// {module}\n" in text, module
    assert text.index("// chat/hooks.js") < text.index("// chat/feed.js") < text.index("// chat/main.js")


def test_the_page_loads_the_bundle_in_production_and_every_module_in_development(tmp_path: Path) -> None:
    from django.template import Context, Template

    page = Template("{% load chat_tags %}{% page_script 'chat/main.js' %}")
    with override_settings(DEBUG=True):
        development = page.render(Context())
    assert development.count('rel="modulepreload"') == len(staticfiles.module_graph("chat/main.js")) > 10
    assert 'type="module" src="/static/chat/main.js"' in development
    with override_settings(STATIC_ROOT=tmp_path, STORAGES=STORAGES, DEBUG=False):
        call_command("collectstatic", "--noinput", verbosity=0)
        staticfiles._has_bundle.cache_clear()
        try:
            production = page.render(Context())
        finally:
            staticfiles._has_bundle.cache_clear()
    bundled = r'<script type="module" src="/static/chat/main\.bundle\.[0-9a-f]{12}\.js"></script>'
    assert re.fullmatch(bundled, production)


def _modules(files: dict[str, str]) -> Callable[[str], str | None]:
    return files.get


def test_the_bundle_keeps_each_module_in_its_own_scope_in_evaluation_order() -> None:
    files = {
        "a/main.js": 'import * as one from "./one.js";\nimport { two as second, shared } from "./two.js";\n'
        "one.run(second, shared);\n",
        "a/one.js": 'import { shared } from "./two.js";\n/* a comment\n   on two lines */\nconst init = 1;\n'
        "export function run(x) { return x + shared + init; }\n",
        "a/two.js": "// a comment\nconst init = 2;\nexport const shared = init;\nfunction two() {}\nexport { two };\n",
    }
    text = staticfiles.bundle("a/main.js", _modules(files))
    assert text.index("// a/two.js") < text.index("// a/one.js") < text.index("// a/main.js")
    assert "const { two: second, shared } = __module_a_two_js;" in text
    assert "const one = __module_a_one_js;" in text
    assert "return Object.freeze({ shared, two });" in text
    assert "a comment" not in text and "export" not in text


@pytest.mark.parametrize(
    "source",
    [
        'import thing from "./two.js";\n',  # a default import
        "export let counter = 0;\n",  # a live binding
        "export default 1;\n",
        'export { shared } from "./two.js";\n',
        'const later = import("./two.js");\n',
        'import { x } from "https://example.com/x.js";\n',
    ],
)
def test_the_bundler_refuses_what_it_cannot_rewrite(source: str) -> None:
    files = {"a/main.js": source, "a/two.js": "export const shared = 1;\nexport const x = 2;\n"}
    with pytest.raises(staticfiles.BundleError):
        staticfiles.bundle("a/main.js", _modules(files))


def test_the_bundler_refuses_an_import_cycle() -> None:
    files = {"a/main.js": 'import "./one.js";\n', "a/one.js": 'import "./two.js";\n'}
    files["a/two.js"] = 'import "./one.js";\n'
    with pytest.raises(staticfiles.BundleError, match="cycle"):
        staticfiles.bundle("a/main.js", _modules(files))
