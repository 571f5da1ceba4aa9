"""System checks of this deployment's settings (``manage.py check --deploy``), and what refuses to serve at all.

Some mistakes leak a secret or hand the client's words to the limits the moment the server runs, whether or not
anybody ran ``check --deploy``: :func:`refuse_to_serve` names those, and the ASGI module refuses to start on them.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning


def _loopback_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is no part of it
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip.is_loopback


def resolves_to_loopback(host: str, port: int | None = None) -> bool:
    """Whether every address ``host`` resolves to is loopback (a name that does not resolve is not).

    Judged on the resolved addresses, not the spelling: ``localhost`` and ``[::ffff:127.0.0.1]`` are loopback, a
    name that resolves to a public address is not, whatever it looks like.
    """
    if not host:
        return False
    try:
        found = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(_loopback_address(str(info[4][0])) for info in found)


def upstream_in_clear(url: str) -> bool:
    """Whether the upstream URL would carry ``auth`` (the API key) unencrypted off this machine."""
    if not url:
        return False  # the embedded sandbox, on loopback
    parts = urlsplit(url)
    if parts.scheme == "wss":
        return False
    try:
        port = parts.port
    except ValueError:
        port = None
    return not resolves_to_loopback(parts.hostname or "", port)


def _daphne_proxy_headers() -> bool:
    """Whether this process is Daphne run with ``--proxy-headers`` (its scope's client is then the leftmost
    ``X-Forwarded-For`` entry, written by the client)."""
    return "daphne.server" in sys.modules and any(
        arg == "--proxy-headers" or arg.startswith("--proxy-headers=") for arg in sys.argv[1:]
    )


def refuse_to_serve() -> list[str]:
    """What this process must not serve with; the ASGI module raises on any (``vizochok_site/asgi.py``)."""
    reasons: list[str] = []
    if not settings.DEBUG and upstream_in_clear(settings.VIZOCHOK_WS_URL):
        reasons.append(
            "VIZOCHOK_WS_URL is not wss:// and does not resolve to loopback: the API key would travel in clear "
            "(use the wss:// URL; plain ws:// is for a sandbox on this machine)"
        )
    if settings.VIZOCHOK_TRUSTED_PROXY_HOPS <= 0 and _daphne_proxy_headers():
        reasons.append(
            "daphne --proxy-headers with VIZOCHOK_TRUSTED_PROXY_HOPS=0: every client could name its own address to "
            "the socket caps and the admin lockout (set VIZOCHOK_TRUSTED_PROXY_HOPS to the number of proxies and "
            "drop --proxy-headers: the app reads X-Forwarded-For itself)"
        )
    return reasons


@register(Tags.security, deploy=True)
def upstream_over_tls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``auth`` carries the API key: off loopback it must travel inside TLS (``wss://``), never in clear."""
    if settings.DEBUG or not upstream_in_clear(settings.VIZOCHOK_WS_URL):
        return []  # development, TLS, or a sandbox on loopback
    return [
        Error(
            "VIZOCHOK_WS_URL is not wss:// and does not resolve to loopback: the API key would be sent in clear.",
            hint="Use the wss:// URL (plain ws:// is allowed only to a loopback address, e.g. a local sandbox). "
            "The server refuses to start like this.",
            id="chat.E001",
        )
    ]


@register(Tags.security, deploy=True)
def proxy_hops_set(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Production runs behind a TLS-terminating proxy: the caps and the lockout must count what it saw."""
    if settings.DEBUG or settings.VIZOCHOK_TRUSTED_PROXY_HOPS > 0:
        return []
    return [
        CheckWarning(
            "VIZOCHOK_TRUSTED_PROXY_HOPS is 0: behind the proxy every shopper has the proxy's address (one socket "
            "cap and one admin lockout for all), and with daphne --proxy-headers the client names its own.",
            hint="Set VIZOCHOK_TRUSTED_PROXY_HOPS to the number of proxies that append to X-Forwarded-For (1 for "
            "one) and run daphne without --proxy-headers.",
            id="chat.W001",
        )
    ]


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


@register()
def secret_api_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The relay holds its key on the server, so it can use a secret one: with a public key the API cannot trust the
    ``user_id`` it sends (reference §14) and keys its per-user limits on the key instead."""
    if not settings.VIZOCHOK_API_KEY.startswith("pk_"):
        return []
    return [
        CheckWarning(
            "VIZOCHOK_API_KEY is a public key (pk_): the API keys its per-user limits on a public key, not on the "
            "user_id the relay sends, so every shopper shares one daily budget (20 conversations, 200 messages).",
            hint="Use the store's secret key (sk_...): the relay keeps it on the server, it never reaches a browser.",
            id="chat.W002",
        )
    ]
