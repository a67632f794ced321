"""The socket's user comes from the session cookie, and frames go out without a wrapper."""

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client as HttpClient

from collab.socketauth import SocketAuthStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _scope_seen(cookie=None):
    seen = {}

    async def inner(scope, receive, send):
        seen["user"] = scope["user"]
        seen["send"] = send

    async def send(message):
        pass

    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": "websocket", "path": "/ws/documents/1/", "headers": headers}
    await SocketAuthStack(inner)(scope, None, send)
    return seen, send


async def test_the_session_cookie_gives_the_user_and_send_is_untouched(owner):
    http = HttpClient()
    await sync_to_async(http.force_login)(owner)
    key = http.cookies[settings.SESSION_COOKIE_NAME].value
    seen, send = await _scope_seen(f"{settings.SESSION_COOKIE_NAME}={key}")
    assert seen["user"].pk == owner.pk
    assert seen["send"] is send


async def test_no_cookie_or_a_stale_one_is_anonymous():
    seen, _ = await _scope_seen()
    assert seen["user"].is_anonymous
    seen, _ = await _scope_seen(f"{settings.SESSION_COOKIE_NAME}=no-such-session")
    assert seen["user"].is_anonymous
