"""Whether a request comes from a page of this site: same scheme, host and port.

A browser sends `Origin` with every WebSocket handshake and with cross-origin requests, and
sends the user's cookies along whatever page opened them. So a socket or an event stream is
let in only from the site's own origin: the scheme the request reached the site with (https
when the proxy says so in SECURE_PROXY_SSL_HEADER, as Django decides it), its Host (which must
be in ALLOWED_HOSTS), and the port in that Host; or from one of CSRF_TRUSTED_ORIGINS. These are
the origins Django's CSRF check accepts a POST from, so a deployment whose login form works
opens sockets too. A page on another port or scheme of the same host is another origin.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def same_origin(scope, missing_ok):
    """Whether the request's Origin header names this site (see the module doc).

    `missing_ok`: what a request without Origin gets. Browsers send one with every WebSocket
    handshake, but not with a same-origin GET such as an EventSource's.
    """
    headers = _headers(scope)
    origin = headers.get("origin")
    if origin is None:
        return missing_ok
    wanted = _origin(origin)
    if wanted is None:
        return False  # "null" (a sandboxed frame, a file:// page) or garbage
    own = site_origin(scope, headers)
    if own is not None and _origin(own) == wanted:
        return True
    return any(_trusted(wanted, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS)


def site_origin(scope, headers=None):
    """scheme://host[:port] of this site as the request reached it, or None when its Host is
    missing or not one of ALLOWED_HOSTS."""
    headers = _headers(scope) if headers is None else headers
    secure = scope.get("scheme") in ("https", "wss")
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        forwarded = headers.get(meta_name.removeprefix("HTTP_").replace("_", "-").lower())
        if forwarded is not None:
            secure = forwarded.split(",", 1)[0].strip() == secure_value
    host = headers.get("host")
    if settings.USE_X_FORWARDED_HOST and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"].split(",", 1)[0].strip()
    if not host:
        return None
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    return f"{'https' if secure else 'http'}://{host}"


class SameOriginSockets:
    """ASGI middleware: a WebSocket handshake from another origin is refused (403)."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not same_origin(scope, missing_ok=False):
            return await WebsocketDenier()(scope, receive, send)
        return await self.inner(scope, receive, send)


def _headers(scope):
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers") or []
    }


def _origin(text):
    """(scheme, host, port) of an origin, the port filled in for http and https; or None."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _trusted(wanted, pattern):
    """Whether an origin matches one of CSRF_TRUSTED_ORIGINS, the way Django's CSRF check
    reads them: exact, or `https://*.example.com` for every subdomain."""
    scheme, _, netloc = pattern.partition("://")
    if netloc.startswith("*"):
        scheme_of, host, port = wanted
        host = host if port == DEFAULT_PORTS[scheme_of] else f"{host}:{port}"  # as sent
        return scheme.lower() == wanted[0] and is_same_domain(host, netloc[1:].lower())
    return _origin(pattern) == wanted


def _allowed_hosts():
    # Django's own default for get_host() when DEBUG is on and ALLOWED_HOSTS is empty.
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS
