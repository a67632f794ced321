"""Tandem settings.

Local defaults just work (SQLite file, in-memory channel layer, DEBUG on). Production mode
(`TANDEM_PRODUCTION=1`) turns DEBUG off and refuses to start without its secrets, so a
misconfigured deployment fails at boot rather than serving with a known key.
"""

import ipaddress
import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url as parse_redis_url

from editor.logs import log_format, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name):
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


PRODUCTION = env_flag("TANDEM_PRODUCTION")
DEBUG = env_flag("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS") if not os.environ.get(name)]
    if missing:
        raise ImproperlyConfigured(
            "Production mode (TANDEM_PRODUCTION=1) needs these environment variables: "
            + ", ".join(missing)
        )
    SECRET_KEY = os.environ["SECRET_KEY"]
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
else:
    SECRET_KEY = os.environ.get("SECRET_KEY", "tandem-local-development-key-not-for-production")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or ["localhost", "127.0.0.1", "[::1]", "testserver"]

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # daphne first, so that `runserver` serves ASGI (websockets included).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "editor",
    "collab",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but one, so that every response (a 400, a static file) carries the policy.
    "editor.csp.PolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Tells a password change which browser session made it (editor/revocation.py).
    "editor.revocation.acting_request_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a login refused for lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes's backend first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# The Content-Security-Policy of every page (django-csp; editor/csp.py adds the page's own
# ws:// or wss:// origin to connect-src). Scripts and styles come only from our static files:
# the one inline script, the editor page's import map, carries the request's nonce
# ({{ request.csp_nonce }}). Stylesheets are ours alone; Quill and quill-cursors set styles
# through the CSSOM, which CSP does not govern. Style *attributes* are allowed for one reason:
# Quill parses pasted HTML in the page's document (DOMParser inherits its policy), and
# Google Docs and Word give bold, italic and colour as style="..."; blocked, a paste would
# lose them (and report one violation each). Nothing else renders raw HTML: content is
# Deltas drawn by Quill. No image or embed is registered (static/js/formats.json), so
# images are ours alone. tests/e2e/test_csp_in_chromium.py drives the editor under it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ROOT_URLCONF = "editor.urls"
ASGI_APPLICATION = "editor.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the page views read while the commit loop writes. synchronous=NORMAL in WAL
    # mode keeps every committed edit through a crash or SIGKILL of the server process (the
    # WAL is written before the commit returns) and skips an fsync per commit; only a power
    # loss can drop the newest commits. Production runs on PostgreSQL, fully durable.
    # wal_autocheckpoint=0: the engine checkpoints in a thread of its own (collab.checkpoint)
    # rather than inside a commit.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;"
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file (not memory) so the engine's database thread sees the test's data; one per
    # process so that two test runs never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"tandem-test-{os.getpid()}.sqlite3")
    }


def redis_channel_layer(url):
    """The channel layer on the Redis at `url`.

    Redis pub/sub channels belong to the whole server, whatever database a connection
    selected, so the database number goes into the channels' prefix: deployments sharing a
    Redis server under different database numbers never receive each other's events (an edit
    to document 1 of one applied to document 1 of the other). Database 0 keeps channels'
    default prefix.
    """
    db = parse_redis_url(url).get("db", 0)
    return {
        # Redis pub/sub pushes each message to the processes subscribed to it; the list-based
        # RedisChannelLayer paid two or three Redis round trips to receive each one, and
        # with a thousand shared documents typed in that was most of a process's CPU. The
        # engine's messages are at-most-once either way: a gap is noticed by version and
        # read from the op log (collab.bridge), and nothing waits in Redis for a process
        # that is gone.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": url}], "prefix": f"asgi-db{db}" if db else "asgi"},
    }


REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The request rate limits count in the "throttle" cache (editor/throttle.py). With several
# processes (REDIS_URL set) it is Redis, so that every process sees the same counts; one
# process alone counts in its own memory.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tandem-throttle",
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tandem-throttle",
        }
    ),
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "document_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's output; only production needs one (locally WhiteNoise reads the sources).
STATIC_ROOT = os.environ.get("STATIC_ROOT") or (BASE_DIR / "staticfiles" if PRODUCTION else None)
# Quill and quill-cursors come from the npm install; only their dist folders are exposed.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/quill", BASE_DIR / "node_modules" / "quill" / "dist"),
    ("vendor/quill-cursors", BASE_DIR / "node_modules" / "quill-cursors" / "dist"),
]

# WhiteNoise serves static files from daphne itself: from the source folders locally, from
# the hashed, compressed collectstatic output in production.
WHITENOISE_USE_FINDERS = not PRODUCTION
if PRODUCTION:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

# Real-time engine limits (see docs/protocol.md).
TANDEM_MAX_MESSAGE_BYTES = env_int("TANDEM_MAX_MESSAGE_BYTES", 256 * 1024)
# What daphne reads of one client WebSocket message before it closes the socket (1009),
# instead of its --websocket-max-message-size (collab.wire.bound_inbound). The margin over the
# message limit lets a message a little too big still get a `too_large` that names its edit.
# 0 turns the bound off (daphne's flags apply).
TANDEM_MAX_FRAME_BYTES = env_int("TANDEM_MAX_FRAME_BYTES", TANDEM_MAX_MESSAGE_BYTES + 64 * 1024)
# The largest a document may grow (collab.docsize); an edit past it is `document_too_large`.
TANDEM_MAX_DOCUMENT_BYTES = env_int("TANDEM_MAX_DOCUMENT_BYTES", 10 * 1024 * 1024)
TANDEM_SNAPSHOT_EVERY_OPS = env_int("TANDEM_SNAPSHOT_EVERY_OPS", 200)
TANDEM_SNAPSHOT_EVERY_SECONDS = env_int("TANDEM_SNAPSHOT_EVERY_SECONDS", 30)
TANDEM_RATE_LIMIT_PER_SECOND = env_int("TANDEM_RATE_LIMIT_PER_SECOND", 200)
# Sockets and event streams one user may have open at once, over every process (counted in
# Redis when REDIS_URL is set, collab.connections); one more is closed with 4409. 0: no cap.
TANDEM_MAX_CONNECTIONS_PER_USER = env_int("TANDEM_MAX_CONNECTIONS_PER_USER", 20)

# Login lockout (django-axes, docs/throttling.md). Failures are counted per username *and*
# address together: a guesser locks only their own address out of that one account, never
# the account's owner elsewhere. The counts are rows in the database, so every process
# shares them, and the admin lists them ("Access attempts": delete one to unlock early).
AXES_FAILURE_LIMIT = env_int("TANDEM_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TANDEM_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A refused try during the lockout does not restart it: the owner retrying from a shared
# address waits no longer than the page says, and a guesser still gets only the limit's
# worth of tries per cool-off.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "editor.throttle.locked_out"
# Failed attempts only: a row per successful login would grow without end.
AXES_DISABLE_ACCESS_LOG = True
# Request rates (django-ratelimit, editor/throttle.py): "count/period", period s, m, h or d
# with an optional multiplier ("20/10m"). Login and sign-up POSTs are counted per address
# (the lockout above cannot stop one address trying one password on many usernames), new
# documents per user.
TANDEM_LOGIN_RATE = os.environ.get("TANDEM_LOGIN_RATE") or "60/10m"
TANDEM_SIGNUP_RATE = os.environ.get("TANDEM_SIGNUP_RATE") or "10/h"
TANDEM_DOCUMENT_CREATE_RATE = os.environ.get("TANDEM_DOCUMENT_CREATE_RATE") or "60/h"
for _name in ("TANDEM_LOGIN_RATE", "TANDEM_SIGNUP_RATE", "TANDEM_DOCUMENT_CREATE_RATE"):
    if not re.fullmatch(r"\d+/\d*[smhd]", globals()[_name]):
        raise ImproperlyConfigured(f"{_name}: {globals()[_name]!r} is not like 10/h or 20/10m")
RATELIMIT_USE_CACHE = "throttle"

# One line of JSON per record in production (for a log shipper), readable lines locally;
# see editor/logs.py. TANDEM_LOG_FORMAT=json|plain overrides the default.
LOGGING = logging_config(
    log_format(os.environ.get("TANDEM_LOG_FORMAT"), PRODUCTION),
    tandem_level=os.environ.get("TANDEM_LOG_LEVEL", "INFO"),
)

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_flag("SECURE_SSL_REDIRECT", default=True)
    # The load balancer probes daphne over plain HTTP, without X-Forwarded-Proto.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"

# A socket that has sent nothing (not even a ping, which clients send every 10 s) for this
# long is closed (code 4408); the hub checks every 5 s, so a dead peer goes within 30 s.
TANDEM_HEARTBEAT_TIMEOUT = env_int("TANDEM_HEARTBEAT_TIMEOUT", 25)

# Who may read /metrics without logging in as staff: clients whose address (REMOTE_ADDR;
# behind a proxy, daphne --proxy-headers makes it the real client's) is in these networks.
TANDEM_METRICS_ALLOWED_NETWORKS = env_list("TANDEM_METRICS_ALLOWED_NETWORKS") or [
    "127.0.0.0/8",
    "::1/128",
]
for _network in TANDEM_METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as error:
        raise ImproperlyConfigured(f"TANDEM_METRICS_ALLOWED_NETWORKS: {error}") from None
if PRODUCTION:
    # Prometheus scrapes each daphne process directly, over plain HTTP (any exemption set
    # above is kept).
    SECURE_REDIRECT_EXEMPT = [*globals().get("SECURE_REDIRECT_EXEMPT", []), r"^metrics$"]
