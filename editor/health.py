"""`GET /healthz`: may a load balancer send this process traffic?

Checks the two things every request depends on: the database (a trivial query) and the
channel layer (a message sent to a fresh channel of this process and received back; through
Redis when REDIS_URL is set, so a process cut off from Redis leaves the pool). The answer
comes within 2 s whatever the dependencies do:

    200 {"status": "ok",   "checks": {"database": "ok", "channel_layer": "ok"}}
    503 {"status": "fail", "checks": {"database": "timeout", "channel_layer": "ok"}}

Each check has a deadline (CHECK_TIMEOUT) and runs single-flight: probes that arrive while a
check is under way share it, so a stalled dependency (a peer that holds the connection and
never answers) costs one stuck check, not one per probe. The database check runs in a thread
of its own on a connection of its own, never in the engine's database thread or Channels'
(asgiref waits out a cancelled thread call, which is what hung the probe); when it misses its
deadline its socket is shut down, so the thread's query fails and the thread is free again.

No login, session or CSRF token is involved. Django still validates the Host header, so the
probe must send one listed in ALLOWED_HOSTS.
"""

import asyncio
import copy
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger("tandem.health")

# Both checks run at once, so the answer takes this long at most, plus the response itself.
CHECK_TIMEOUT = 1.5
# A new connection to a stalled database gives up by itself (libpq's connect_timeout, whole
# seconds): there is no socket to shut down before it exists.
CONNECT_TIMEOUT = 2

_thread = ThreadPoolExecutor(1, thread_name_prefix="tandem-health")


class _Database:
    """The health thread's own database connection (only that thread uses it)."""

    def __init__(self):
        self.wrapper = None
        self.abandoned = False  # its socket was shut down at the deadline

    def query(self):
        reused, self.abandoned = self.wrapper is not None, False
        try:
            self._select_one()
        except Exception:
            if not reused or self.abandoned:
                raise
            # A connection kept from earlier probes died since (a database restart, an idle
            # timeout): that says nothing about the database now, so ask on a new one.
            self._select_one()

    def _select_one(self):
        if self.wrapper is None:
            wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
            wrapper.settings_dict = copy.deepcopy(wrapper.settings_dict)
            if wrapper.vendor == "postgresql":
                wrapper.settings_dict["OPTIONS"].setdefault("connect_timeout", CONNECT_TIMEOUT)
            self.wrapper = wrapper
        try:
            with self.wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception:
            try:
                self.close()
            except Exception:
                self.wrapper = None  # a connection that broke may fail to close too
            raise

    def close(self):
        if self.wrapper is not None:
            wrapper, self.wrapper = self.wrapper, None
            wrapper.close()

    def shut_down(self):
        """Called from the event loop when the query missed its deadline: end its socket."""
        self.abandoned = True
        wrapper = self.wrapper
        raw = getattr(wrapper, "connection", None)
        pgconn = getattr(raw, "pgconn", None)  # psycopg 3; SQLite has no socket to stall
        if pgconn is None:
            return
        try:
            duplicate = socket.socket(fileno=os.dup(pgconn.socket))
        except Exception:
            return  # closed meanwhile
        with duplicate:
            try:
                duplicate.shutdown(socket.SHUT_RDWR)  # the original socket, not just this fd
            except OSError:
                pass


_database = _Database()


async def check_database():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(_thread, _database.query)


def close_connection():
    """Close the health thread's database connection (tests drop their database after)."""
    _thread.submit(_database.close).result()


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
# What ends a check that missed its deadline; a check without one is cancelled.
ON_DEADLINE = {"database": lambda: _database.shut_down()}
_running = {}  # name -> the task of the check in flight
_ending = set()  # checks that missed a deadline and are being ended


async def _run(name, check):
    started = time.monotonic()
    task = _running.get(name)
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        task = _running[name] = asyncio.get_running_loop().create_task(check())
    try:
        await asyncio.wait_for(asyncio.shield(task), CHECK_TIMEOUT - (time.monotonic() - started))
    except TimeoutError:
        # End the check (the next probe starts afresh once it has ended) unless a probe that
        # came first already did.
        if not task.done() and task not in _ending:
            _ending.add(task)
            task.add_done_callback(_ended)
            ending = ON_DEADLINE.get(name)
            if ending is None:
                task.cancel()
            else:
                ending()
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


def _ended(task):
    _ending.discard(task)
    if not task.cancelled():
        task.exception()  # expected after its deadline; not an exception nobody retrieved


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
