"""Settings for the VIZOCHOK chat relay.

Everything that differs between a laptop and production comes from the environment (see README and
docs/ui-contract.md). The defaults are the embedded development setup: SQLite, an in-memory channel layer and
the built-in sandbox upstream, so a fresh checkout runs with no configuration at all.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets classes that are generic only in django-stubs (ModelAdmin[Conversation], ...) be subscripted at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    """A number of seconds (or a rate): empty or blank means the default; anything but a finite number is refused."""
    value = os.environ.get(name)
    if not value or not value.strip():
        return float(default)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}")
    return number


DEBUG = env_bool("DJANGO_DEBUG", True)

_DEV_SECRET = "django-insecure-dev-only-vizochok-relay-change-me"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "chat.apps.LoginProtectionConfig",  # django-axes
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Above sessions and CSRF: rewrites their cookies as SameSite=None; Secure; Partitioned for framed visits.
    "chat.web.embed.EmbedCookieMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chat.ops.security.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "vizochok_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "vizochok_site.asgi.application"

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Another process's write lock is waited for, but one attempt at most 1 s: every call of this process queues on
    # one database thread, so a 20 s wait kept new sockets from their handshake (5 s) and a send from its answer for
    # 24 s (issue 24). chat.persistence.db retries within its budgets (a send about 6 s in all, the relay's writes
    # about 23 s).
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 1
    # WAL: a commit appends to the log instead of fsyncing the rollback journal and the file. With the default
    # journal every commit cost ~3 ms of fsync on the single DB thread, which queued turn starts for seconds at
    # 200 conversations (manage.py bench_relay, docs/benchmarks.md). NORMAL is still crash-safe in WAL mode.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    # Keep each DB thread's SQLite connection: closing the last one checkpoints the WAL, and reconnecting per
    # event (CONN_MAX_AGE=0) cost more than the queries themselves. An explicit DATABASE_CONN_MAX_AGE still wins.
    if not os.environ.get("DATABASE_CONN_MAX_AGE"):
        DATABASES["default"]["CONN_MAX_AGE"] = 600

if (
    DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    and env_bool("DATABASE_POOL", True)
    and not DATABASES["default"]["CONN_MAX_AGE"]
):
    # Without a pool every database trip opened a PostgreSQL connection (3.8 ms on loopback here: a backend forked
    # per connection; more with TLS to another host): channels closes the database thread's connection after each
    # trip when CONN_MAX_AGE is 0, and every page load runs in a thread of its own (Django's ASGI handler), where a
    # persistent connection would be left behind with its thread. Django's pool takes each back instead; checked
    # before reuse, so a connection a failover broke is replaced, not handed out. A DATABASE_CONN_MAX_AGE above 0
    # turns it off (Django pools only connections that close after each use).
    _pool_min, _pool_max = env_int("DATABASE_POOL_MIN_SIZE", 2), env_int("DATABASE_POOL_MAX_SIZE", 20)
    if not 0 <= _pool_min <= _pool_max or _pool_max < 1:
        raise ImproperlyConfigured(
            f"DATABASE_POOL_MIN_SIZE ({_pool_min}) must be 0 or more and at most DATABASE_POOL_MAX_SIZE ({_pool_max}),"
            " which must be at least 1"
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": _pool_min,
        "max_size": _pool_max,
        # How long a caller waits for a connection (a free one, or a new one while the database refuses them): then
        # it fails as an unreachable database does and is retried (chat/persistence/db.py). Short, as SQLite's lock
        # wait above: the relay's calls share one database thread, and a wait there holds up every conversation's.
        "timeout": 1,
        # The pool's own reconnection backs off 1, 2, 4, 8… s for up to this long: with psycopg_pool's 5 minutes a
        # database back after 16 s would get its first connection at about 31 s, past the relay's retries. Given up
        # sooner, the next caller asks for a connection afresh.
        "reconnect_timeout": 2,
    }
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, exactly channels-redis's 5 s blocking pop:
            # every idle socket's consumer then died with "Timeout reading". Reads get more room than the pop.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 1500, "expiry": 30},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # channels' InMemoryChannelLayer, its expiry sweep on a timer instead of per send (chat/compat/channels_layer.py).
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chat.compat.channels_layer.RelayChannelLayer", "CONFIG": {"capacity": 1500}}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Admin login throttling (django-axes): after VIZOCHOK_ADMIN_LOGIN_FAILURES wrong passwords for one user name from
# one address, that pair is locked out for VIZOCHOK_ADMIN_LOCKOUT_MINUTES (the right password too). Admins clear a
# lockout in the admin ("Access attempts") or with `manage.py axes_reset`. Counting the pair, not the user name
# alone, keeps an attacker from locking the real admins out; the address is the one our proxies saw.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("VIZOCHOK_ADMIN_LOGIN_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("VIZOCHOK_ADMIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "chat.ops.ratelimit.request_client_address"

LANGUAGE_CODE = "uk"
LANGUAGES = [("uk", "Українська"), ("en", "English"), ("ru", "Русский")]
#: Where a locale's date formats are corrected (a day of a month in the genitive: "7 грудня").
FORMAT_MODULE_PATH = ["vizochok_site.formats"]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "Europe/Kyiv")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "chat.ops.staticfiles.StaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Sessions: the anonymous shopper's stable id lives here, so it must survive browser restarts.
SESSION_COOKIE_AGE = 60 * 60 * 24 * 30
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Embedding: native WebViews and storefront iframes (chat/web/embed.py, docs/embedding.md) ------------------------
# Words separated by spaces or commas; "*" is refused where it would open the door to every site.


def env_words(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    return [item for item in value.replace(",", " ").split() if item] if value else default


# HMAC secret shared with the hosts' backends that sign entry tokens (/?token=…); empty = token entry disabled.
VIZOCHOK_EMBED_SECRET = os.environ.get("VIZOCHOK_EMBED_SECRET", "")
# Seconds an entry token may be valid for (its exp at most this far ahead); each token opens one session only.
VIZOCHOK_TOKEN_MAX_LIFETIME = env_int("VIZOCHOK_TOKEN_MAX_LIFETIME", 600)
# CSP frame-ancestors of the chat page: who may frame it, e.g. "'self' https://shop.example".
VIZOCHOK_FRAME_ANCESTORS = env_words("VIZOCHOK_FRAME_ANCESTORS", ["'self'"])
# Parent frames that receive the chat's events by postMessage and may send it commands (this site always may).
VIZOCHOK_EMBED_PARENT_ORIGINS = env_words("VIZOCHOK_EMBED_PARENT_ORIGINS", [])
# Exact WebSocket origins besides this site itself (compared whole: scheme, host, port), e.g. "null" or
# "capacitor://localhost" for WebViews, or a storefront page that opens the chat socket itself.
VIZOCHOK_WS_ALLOWED_ORIGINS = env_words("VIZOCHOK_WS_ALLOWED_ORIGINS", [])
for _name, _words in (
    ("VIZOCHOK_FRAME_ANCESTORS", VIZOCHOK_FRAME_ANCESTORS),
    ("VIZOCHOK_EMBED_PARENT_ORIGINS", VIZOCHOK_EMBED_PARENT_ORIGINS),
    ("VIZOCHOK_WS_ALLOWED_ORIGINS", VIZOCHOK_WS_ALLOWED_ORIGINS),
):
    if any(word == "*" or ";" in word or "*" in word.split("//")[0] for word in _words):
        raise ImproperlyConfigured(f"{_name} must list origins; '*' and ';' are not allowed")
# The official widget's options, per deployment; an embed's data- attributes override them (chat/web/embed.py).
VIZOCHOK_WIDGET_PRIMARY_COLOR = os.environ.get("VIZOCHOK_WIDGET_PRIMARY_COLOR", "")
VIZOCHOK_WIDGET_FONT_FAMILY = os.environ.get("VIZOCHOK_WIDGET_FONT_FAMILY", "")
VIZOCHOK_WIDGET_BORDER_RADIUS = os.environ.get("VIZOCHOK_WIDGET_BORDER_RADIUS", "")
VIZOCHOK_WIDGET_BOT_NAME = os.environ.get("VIZOCHOK_WIDGET_BOT_NAME", "")
VIZOCHOK_WIDGET_BOT_AVATAR = os.environ.get("VIZOCHOK_WIDGET_BOT_AVATAR", "")
VIZOCHOK_WIDGET_PLACEHOLDER = os.environ.get("VIZOCHOK_WIDGET_PLACEHOLDER", "")
VIZOCHOK_WIDGET_WELCOME_MESSAGE = os.environ.get("VIZOCHOK_WIDGET_WELCOME_MESSAGE", "")
#: Tappable examples on an empty conversation, separated by "|" (sent as the shopper's message); empty: the
#: localized defaults (chat/presentation/texts.py STARTERS).
VIZOCHOK_STARTERS = [item.strip() for item in os.environ.get("VIZOCHOK_STARTERS", "").split("|") if item.strip()]
#: The store's own checkout page; when set, the cart panel offers a checkout button leading there.
VIZOCHOK_CHECKOUT_URL = os.environ.get("VIZOCHOK_CHECKOUT_URL", "")

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
    if not SECURE_HSTS_PRELOAD:
        # Opting out of the preload list is a deliberate choice (DJANGO_HSTS_PRELOAD=0), not a deploy mistake.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    # Probes and scrapers talk plain HTTP to the process; everything else is redirected to HTTPS.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# "json": one JSON object per line on stderr from every logger (chat.ops.logs); "plain": human-readable lines.
VIZOCHOK_LOG_FORMAT = os.environ.get("VIZOCHOK_LOG_FORMAT", "plain").strip().lower() or "plain"
if VIZOCHOK_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"VIZOCHOK_LOG_FORMAT must be 'plain' or 'json', got {VIZOCHOK_LOG_FORMAT!r}")
VIZOCHOK_LOG_LEVEL = os.environ.get("VIZOCHOK_LOG_LEVEL", "INFO").strip().upper() or "INFO"
# dictConfig, plus Python's warnings routed into logging (as "py.warnings") instead of printed to stderr.
LOGGING_CONFIG = "chat.ops.logs.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"conversation": {"()": "chat.ops.logs.ConversationFilter"}},
    "formatters": {
        "plain": {
            "()": "chat.ops.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(conversation)s] %(message)s",
        },
        "json": {"()": "chat.ops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": VIZOCHOK_LOG_FORMAT,
            "filters": ["conversation"],
        }
    },
    # Everything else (Daphne, Twisted through chat.ops.logs, asyncio, captured warnings) reaches the root's handler.
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "chat": {"handlers": ["console"], "level": VIZOCHOK_LOG_LEVEL, "propagate": False},
        # Django's defaults give "django" handlers of its own (a plain console one while DEBUG is on): none here, so
        # "Not Found" and "Forbidden (CSRF ...)" go to the root's handler in the chosen format.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # Twisted's INFO is factory start/stop chatter and a second access log; its warnings and errors are kept.
        "twisted": {"level": "WARNING"},
    },
}

# --- VIZOCHOK upstream ------------------------------------------------------------------------------------------
# Empty URL = the built-in sandbox, started inside this process on a loopback port at the first turn.
VIZOCHOK_WS_URL = os.environ.get("VIZOCHOK_WS_URL", "")
VIZOCHOK_API_KEY = os.environ.get("VIZOCHOK_API_KEY", "sk_test_sandbox_key")
VIZOCHOK_STORE_ID = os.environ.get("VIZOCHOK_STORE_ID", "sandbox-store")
VIZOCHOK_MAX_CONNECTIONS = env_int("VIZOCHOK_MAX_CONNECTIONS", 3)
# Seconds an idle upstream socket is kept after response_complete before its slot is given back.
VIZOCHOK_IDLE_GRACE = env_float("VIZOCHOK_IDLE_GRACE", 15)
# Seconds a turn may wait in line for an upstream slot while the line does not move (no turn served anywhere, its
# place unchanged); a moving line never times a turn out (chat/turns/slots.py).
VIZOCHOK_QUEUE_TIMEOUT = env_float("VIZOCHOK_QUEUE_TIMEOUT", 30)
# Seconds a turn may be expected to wait in line: a longer line refuses it at once, saying when to try again.
VIZOCHOK_LINE_MAX_WAIT = env_float("VIZOCHOK_LINE_MAX_WAIT", 90)
# Turns one client address may have waiting in the line at once (0 = no cap); addresses are served in turn.
VIZOCHOK_QUEUED_PER_ADDRESS = env_int("VIZOCHOK_QUEUED_PER_ADDRESS", 5)
VIZOCHOK_TURN_TIMEOUT = env_float("VIZOCHOK_TURN_TIMEOUT", 120)
# After an upstream error ends a turn, how long its response_complete may still come before the socket serves the
# next turn; and the quiet a socket must have had before a turn (frames in it belong to no turn: set apart).
VIZOCHOK_ERROR_GRACE = env_float("VIZOCHOK_ERROR_GRACE", 1.0)
VIZOCHOK_SETTLE_GRACE = env_float("VIZOCHOK_SETTLE_GRACE", 0.03)
# Offer permessage-deflate upstream: off, as the protocol's frames are small JSON (a token each) and inflating every
# one cost the relay more CPU than the bytes it saves (docs/benchmarks.md); on for a slow or metered link.
VIZOCHOK_UPSTREAM_DEFLATE = env_bool("VIZOCHOK_UPSTREAM_DEFLATE", False)
# An illegal transition of a conversation runner's lifecycle (chat/turns/states.py) raises instead of being logged and
# recovered from: on in the test suite (tests/conftest.py), off in production.
VIZOCHOK_STRICT_STATES = env_bool("VIZOCHOK_STRICT_STATES", False)
# Seconds for the whole upstream handshake once connected (auth_ok and the start frame): an upstream that accepts
# the socket and stays silent is given up after this long, with a clear message, and not retried.
VIZOCHOK_AUTH_TIMEOUT = env_float("VIZOCHOK_AUTH_TIMEOUT", 10)
# Seconds /readyz reuses its last upstream auth round trip (each one takes one of the key's three sockets briefly).
VIZOCHOK_READY_UPSTREAM_CACHE = env_float("VIZOCHOK_READY_UPSTREAM_CACHE", 10)
# Retries (on the documented backoff schedule) when opening an upstream socket for a waiting shopper: the SDK's 30
# would keep a shopper staring at "reconnecting" for minutes, so a turn gives up sooner and says so.
VIZOCHOK_OPEN_RETRIES = env_int("VIZOCHOK_OPEN_RETRIES", 5)
# The turn next in line opens its upstream socket while it waits and sends ``auth`` once its slot is granted
# (chat/turns/ahead.py); off: the socket is opened after the grant.
VIZOCHOK_OPEN_AHEAD = env_bool("VIZOCHOK_OPEN_AHEAD", True)
# Freeze what the server's start-up made out of the garbage collector's reach (chat/ops/collector.py): its full
# collections, a pause of every frame in flight, then walk only what the connections made since.
VIZOCHOK_GC_FREEZE = env_bool("VIZOCHOK_GC_FREEZE", True)
# Pace of the embedded sandbox, in tokens per second (0: as fast as the loop allows).
VIZOCHOK_SANDBOX_PACE = env_float("VIZOCHOK_SANDBOX_PACE", 40)
# Product cards shown per message; "Show more" fetches the next ones of the stored message (a 64 KB upstream frame
# can carry 1,400 cards: megabytes of HTML in one browser frame).
VIZOCHOK_CARDS_PER_MESSAGE = env_int("VIZOCHOK_CARDS_PER_MESSAGE", 12)
#: The most of one product a line may hold (pieces, kilograms or litres): steppers stop there and the relay refuses
#: more, saying the range ("from 1 to 50 pcs"). Grocery stores cap a line; the sandbox's cap is 50.
VIZOCHOK_MAX_QUANTITY = env_int("VIZOCHOK_MAX_QUANTITY", 50)
# No fragment sent to a browser is larger than this (bytes; Daphne/autobahn and browsers refuse frames over 1 MiB):
# a larger one is replaced by a short notice to reload (chat.presentation.rendering.fit_for_browser).
VIZOCHOK_MAX_FRAGMENT_BYTES = env_int("VIZOCHOK_MAX_FRAGMENT_BYTES", 512 * 1024)
# Browser frames are coalesced: at most one streaming fragment per conversation per this many seconds.
VIZOCHOK_COALESCE_SECONDS = env_float("VIZOCHOK_COALESCE_SECONDS", 0.03)
# --- production: liveness, limits, observability (chat/turns/liveness.py, chat/ops/ratelimit.py, metrics.py) ---
# The process running a turn refreshes its heartbeat this often; 3 missed beats make the turn stale elsewhere.
VIZOCHOK_HEARTBEAT_SECONDS = env_float("VIZOCHOK_HEARTBEAT_SECONDS", 5)
# Seconds a crashed process's upstream slot (a Redis lease) outlives it.
VIZOCHOK_SLOT_TTL = env_float("VIZOCHOK_SLOT_TTL", 30)
# Turns a shopper may start: a token bucket shared by their tabs and by every process (in the cache).
VIZOCHOK_TURNS_PER_MINUTE = env_float("VIZOCHOK_TURNS_PER_MINUTE", 20)
VIZOCHOK_TURN_BURST = env_float("VIZOCHOK_TURN_BURST", 10)
# Turns one client address may start (whatever its cookies), checked before anything is stored (0 = no limit).
# Generous by default: many shoppers may share one address (an office, a carrier's NAT); the line's round-robin
# keeps an address to its share of the sockets whatever this allows.
VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS = env_float("VIZOCHOK_TURNS_PER_MINUTE_PER_ADDRESS", 120)
VIZOCHOK_TURN_BURST_PER_ADDRESS = env_float("VIZOCHOK_TURN_BURST_PER_ADDRESS", 60)
# Open browser sockets per shopper session and per client address (0 = no cap).
VIZOCHOK_MAX_SOCKETS_PER_SESSION = env_int("VIZOCHOK_MAX_SOCKETS_PER_SESSION", 12)
VIZOCHOK_MAX_SOCKETS_PER_IP = env_int("VIZOCHOK_MAX_SOCKETS_PER_IP", 200)
# Bytes a browser socket may leave unread in this process before it is dropped (a tab that stops reading must not
# grow the server; the kernel's own socket buffer comes on top). Measured under Daphne (chat/ops/sendbuffer.py).
VIZOCHOK_SOCKET_SEND_BUFFER = env_int("VIZOCHOK_SOCKET_SEND_BUFFER", 1024 * 1024)
# Per socket: one catch-up (`sync`) at a time, at most one per this many seconds; syncs meanwhile are merged.
VIZOCHOK_SYNC_INTERVAL = env_float("VIZOCHOK_SYNC_INTERVAL", 2)
# The page's own heartbeat on its chat socket (a silent network loss closes nothing): a ping every INTERVAL seconds
# while the page is visible, and a socket that answers nothing within TIMEOUT is given up and replaced. Their sum
# bounds how long a dead network goes unnoticed (the UI contract promises 10 s).
VIZOCHOK_PAGE_HEARTBEAT_INTERVAL = env_float("VIZOCHOK_PAGE_HEARTBEAT_INTERVAL", 4)
VIZOCHOK_PAGE_HEARTBEAT_TIMEOUT = env_float("VIZOCHOK_PAGE_HEARTBEAT_TIMEOUT", 4)
# Reverse proxies in front of the app that append the address they saw to X-Forwarded-For (0 = none: the socket's
# peer is the client). With N, the N-th entry from the right is the client: whatever the client wrote itself sits
# further left and is never trusted (daphne --proxy-headers alone would take the leftmost, the client's own words).
VIZOCHOK_TRUSTED_PROXY_HOPS = env_int("VIZOCHOK_TRUSTED_PROXY_HOPS", 0)
