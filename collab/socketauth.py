"""Who is on a socket: the user of the session cookie, read once when the socket connects.

Channels' AuthMiddlewareStack also wraps every outgoing message, to save a session that
changed; a socket here never changes one (logging in and out is HTTP). With a hundred sockets
on a document that check on each frame took a tenth of the server's time. This middleware
reads the same session and user and passes `send` through untouched.
"""

from importlib import import_module

from channels.auth import get_user
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware
from django.conf import settings


class SocketUserMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        store = import_module(settings.SESSION_ENGINE).SessionStore
        key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        scope = dict(scope, session=store(key))
        scope["user"] = await get_user(scope)
        return await super().__call__(scope, receive, send)


def SocketAuthStack(inner):
    """scope["cookies"], scope["session"] (read only) and scope["user"] for `inner`."""
    return CookieMiddleware(SocketUserMiddleware(inner))
