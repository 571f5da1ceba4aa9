"""Content Security Policy for every response.

The chat page runs no inline script: htmx and the modules of static/chat/ are files from our origin, and htmx's
own inline indicator ``<style>`` is switched off in the page (``htmx-config``), so ``script-src 'self'`` and
``style-src 'self'`` hold. Product images may come from the merchant's CDN over HTTPS
(``chat/presentation/images.py`` allows only http(s) URLs; the page is HTTPS in production, so https: is the only
remote scheme that can load).

Embedding (issue 7) owns ``frame-ancestors``: ``frame_ancestors()`` is the single hook that decides it, fed from
``VIZOCHOK_FRAME_ANCESTORS`` when that setting exists; without it the page may only be framed by itself.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


def frame_ancestors(request: HttpRequest) -> str:
    """Who may frame our pages: ``'self'`` plus the configured storefront origins (the embedding hook)."""
    if not getattr(request, "vizochok_embeddable", False):
        return "'self'"  # only the chat's own pages (chat.web.embed.embeddable) may be framed by storefronts
    return " ".join(dict.fromkeys(["'self'", *settings.VIZOCHOK_FRAME_ANCESTORS]))


def policy(request: HttpRequest) -> str:
    # Django admin's widgets set a few style attributes; the shopper-facing pages set none.
    style = "'self' 'unsafe-inline'" if request.path.startswith("/admin/") else "'self'"
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": style,
        "img-src": "'self' https: data:",
        "font-src": "'self'",
        # 'self' covers ws: and wss: to our own host in CSP Level 3 browsers.
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": frame_ancestors(request),
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Sets the policy unless a view set its own (sync and async capable, like Django's own middleware)."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if HEADER not in response:
            response[HEADER] = policy(request)
        return response
