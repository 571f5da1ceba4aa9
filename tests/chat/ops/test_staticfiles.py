"""Production static files: the page's ES modules import each other under their hashed names."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

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
