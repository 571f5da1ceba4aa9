"""Static files in production: compressed, hashed names, and our ES module imports rewritten to the hashed names.

The page's script is a set of ES modules (static/chat/main.js imports the others). Without the rewrite, main.js would
be served under its hashed name but would import ``./hooks.js`` under the plain one, which is cached briefly and
may belong to the previous deploy for a while. Only our own modules are rewritten: Django's rewrite applied to every
``*.js`` misreads third-party files (django-htmx's extensions mention ``htmx`` in import-like comments).
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.http import HttpRequest, HttpResponse
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):  # type: ignore[misc]  # whitenoise is untyped
    patterns = (
        *CompressedManifestStaticFilesStorage.patterns,
        # Django's own ES module rules (the ones its support_js_module_import_aggregation switch adds), for our files.
        ("chat/*.js", ManifestStaticFilesStorage._js_module_import_aggregation_patterns[1]),  # type: ignore[attr-defined]
    )


@functools.lru_cache(maxsize=1)
def _favicon() -> bytes:
    return (Path(settings.BASE_DIR) / "static" / "chat" / "favicon.ico").read_bytes()


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: browsers ask the site's root for it whatever the page says; a 404 there fills the logs."""
    response = HttpResponse(_favicon(), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
