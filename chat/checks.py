"""System checks of this deployment's settings (``manage.py check --deploy``)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(Tags.security, deploy=True)
def upstream_over_tls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``auth`` carries the API key: off loopback it must travel inside TLS (``wss://``), never in clear."""
    url = settings.VIZOCHOK_WS_URL
    if settings.DEBUG or not url:
        return []  # development, or the embedded sandbox on loopback
    parts = urlsplit(url)
    if parts.scheme == "ws" and not _loopback(parts.hostname or ""):
        return [
            Error(
                "VIZOCHOK_WS_URL is ws:// to another host: the API key would be sent in clear.",
                hint="Use the wss:// URL (plain ws:// is allowed only to a loopback address, e.g. a local sandbox).",
                id="chat.E001",
            )
        ]
    return []


@register(Tags.security)
def checkout_url_allowed(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The checkout button opens ``VIZOCHOK_CHECKOUT_URL`` in the top window: https only (http in development)."""
    from chat.web.embed import checkout_url_refusal

    refusal = checkout_url_refusal(settings.VIZOCHOK_CHECKOUT_URL, settings.DEBUG)
    if refusal is None:
        return []
    return [
        Error(
            refusal,
            hint="Set the store's https:// checkout page, or leave it empty for no checkout button "
            "(the page shows no button while the URL is refused).",
            id="chat.E003",
        )
    ]
