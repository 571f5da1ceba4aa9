"""ASGI entry point: HTTP through Django, WebSockets through Channels with an Origin check."""

from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application

# Database work runs on one sync thread beside the event loop and shares the GIL with it. With CPython's default
# 5 ms switch interval a frame waits up to 5 ms for the GIL behind that thread, and each statement's re-take as long
# behind the loop: at 60 streaming conversations the relay-added p99 per frame was 11.5 ms with 5 ms and 7.2 ms with
# 0.5 ms (manage.py bench_relay -n 60, docs/benchmarks.md).
sys.setswitchinterval(0.0005)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vizochok_site.settings")
# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from chat.checks import refuse_to_serve  # noqa: E402
from chat.compat import startup, twisted_tcp  # noqa: E402
from chat.ops import collector, departure, sendbuffer  # noqa: E402
from chat.ops.logs import install_daphne_logging  # noqa: E402
from chat.web.embed import websocket_origin_validator  # noqa: E402
from chat.web.lifecycle import install_daphne_shutdown, lifespan  # noqa: E402
from chat.web.routing import websocket_urlpatterns  # noqa: E402

# Not only a deploy check: a server that would send the API key in clear, or count addresses clients wrote, does not
# start at all (issue 24).
_refusals = refuse_to_serve()
if _refusals:
    raise ImproperlyConfigured("; ".join(_refusals))

install_daphne_shutdown()  # SIGTERM: mark running turns, close upstream sockets (uvicorn: the lifespan below)
install_daphne_logging()  # Twisted's log and the access log (tokens redacted) through stdlib logging
startup.check_all()  # library patches (chat/compat): an unknown version or a switch turned off is logged now
twisted_tcp.install()  # a frame goes to its socket when sent, not on the next reactor pass (chat/compat)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "lifespan": lifespan,
        # Origins: this site itself, whole (scheme, host, port), plus the exact VIZOCHOK_WS_ALLOWED_ORIGINS.
        # Outermost, where the server's own send is seen: how much each socket has not taken yet (a tab that stops
        # reading is closed, chat/ops/sendbuffer.py).
        # Inside it, the disconnect is noticed while a handler still waits (send-path work of a gone tab is dropped).
        "websocket": sendbuffer.attach(
            departure.watch(websocket_origin_validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))))
        ),
    }
)

if settings.VIZOCHOK_GC_FREEZE:
    # Last: what start-up made (every module above, the router) is out of the collector's full walks, which every
    # frame in flight waits for (chat/ops/collector.py).
    collector.freeze_start_up()
