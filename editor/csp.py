"""The Content-Security-Policy header: django-csp's middleware plus the page's own socket.

The policy itself is `CONTENT_SECURITY_POLICY` in editor/settings.py. The one source it
cannot name there is the WebSocket: the page opens `ws://` or `wss://` on the host it was
served from (static/js/editor-page.js, socketUrl), and `'self'` covers that only in
browsers that follow CSP Level 3. So every response adds that exact origin to connect-src.
"""

from dataclasses import replace

from csp.middleware import CSPMiddleware
from django.core.exceptions import DisallowedHost


def socket_origin(request):
    """The origin of the page's WebSocket (`wss://host:port` or `ws://...`), or None.

    None when the request's host is not an allowed one: Django answers 400 then, and the
    header keeps the policy without the socket.
    """
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"


class PolicyMiddleware(CSPMiddleware):
    """django-csp's CSPMiddleware, with this request's WebSocket origin in connect-src."""

    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only=report_only)
        origin = socket_origin(request)
        if origin is None:
            return parts
        update = dict(parts.update or {})
        update["connect-src"] = [*update.get("connect-src", ()), origin]
        return replace(parts, update=update)
