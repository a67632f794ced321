"""`GET /healthz`: may a load balancer send this process traffic?

Checks the two things every request depends on: the database (a trivial query) and the
channel layer (a message sent to a fresh channel of this process and received back; through
Redis when REDIS_URL is set, so a process cut off from Redis leaves the pool). Each check has
a short deadline so a hung dependency turns into a 503, not a hung probe.

    200 {"status": "ok",   "checks": {"database": "ok", "channel_layer": "ok"}}
    503 {"status": "fail", "checks": {"database": "ok", "channel_layer": "timeout"}}

No login, session or CSRF token is involved. Django still validates the Host header, so the
probe must send one listed in ALLOWED_HOSTS.
"""

import asyncio
import logging
import time
import uuid

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger("tandem.health")

CHECK_TIMEOUT = 2.0


@database_sync_to_async
def _query_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def check_database():
    await _query_database()


async def check_channel_layer():
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    nonce = uuid.uuid4().hex
    channel = await layer.new_channel("healthz.")
    await layer.send(channel, {"type": "healthz.ping", "nonce": nonce})
    message = await layer.receive(channel)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


CHECKS = {"database": check_database, "channel_layer": check_channel_layer}


async def _run(name, check):
    started = time.monotonic()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        log.error(
            "health check %s timed out after %.1f s",
            name,
            time.monotonic() - started,
            extra={"event": "health", "check": name},
        )
        return "timeout"
    except Exception:
        log.exception("health check %s failed", name, extra={"event": "health", "check": name})
        return "error"
    return "ok"


@never_cache
@require_safe
async def healthz(request):
    names = list(CHECKS)
    outcomes = await asyncio.gather(*(_run(name, CHECKS[name]) for name in names))
    checks = dict(zip(names, outcomes, strict=True))
    healthy = all(outcome == "ok" for outcome in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "fail", "checks": checks},
        status=200 if healthy else 503,
    )
