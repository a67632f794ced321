"""A SimClient over a real WebSocket, for tests against daphne processes."""

import asyncio
import json
import time

import websockets

from tests.collab.simclient import RETRY_CODES, SimClient
from tests.live_server import run_python


def session_cookie(username, env):
    """A signed-in session for `username`, made directly in the server's database."""
    code = f"""
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.get(username={username!r})
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps(session.session_key))
"""
    return run_python(code, env=env)


class WsClient:
    """One browser-like client: a SimClient, its socket, and reconnection."""

    def __init__(self, client_id, cookie, server, document_id):
        self.sim = SimClient(client_id, self._send)
        self.cookie = cookie
        self.server = server
        self.document_id = document_id
        self.socket = None
        self.reader = None
        self.presence = {}
        self.closed_codes = []
        self.ack_times = []  # when each of sim.acked arrived (time.monotonic()), in order

    async def _send(self, message):
        if self.socket is not None:
            try:
                await self.socket.send(json.dumps(message))
            except websockets.ConnectionClosed:
                pass  # the in-flight edit is resent after the reconnect

    async def connect(self, timeout=10):
        url = f"{self.server.ws_url}/ws/documents/{self.document_id}/"
        self.socket = await websockets.connect(
            url,
            origin=self.server.url,
            additional_headers={"Cookie": f"sessionid={self.cookie}"},
            max_size=2**22,
        )
        self.reader = asyncio.get_running_loop().create_task(self._read())
        errors = len(self.sim.errors)
        await self._send({"type": "hello", "client_id": self.sim.client_id,
                          "version": self.sim.version})  # fmt: skip
        try:
            async with asyncio.timeout(timeout):
                while self.sim.doc is None or self.joined_version is None:
                    if self.reader.done():
                        raise ConnectionError("the socket closed before `joined`")
                    if any(e["code"] in RETRY_CODES for e in self.sim.errors[errors:]):
                        raise ConnectionError("`hello` refused for now")  # reconnect later
                    await asyncio.sleep(0.005)
        except (TimeoutError, ConnectionError):
            await self.close()  # a reconnect starts from a socket of its own
            raise

    joined_version = None
    failure = None
    pong = None  # the last one

    async def _read(self):
        socket = self.socket
        try:
            async for text in socket:
                message = json.loads(text)
                if message["type"] == "joined":
                    self.joined_version = message["version"]
                    self.presence = {p["session"]: p for p in message["presence"]}
                elif message["type"] == "presence":
                    self.presence[message["session"]] = message
                elif message["type"] == "leave":
                    self.presence.pop(message["session"], None)
                elif message["type"] == "pong":
                    self.pong = message
                acked = len(self.sim.acked)
                await self.sim.handle(message)
                self.ack_times += [time.monotonic()] * (len(self.sim.acked) - acked)
        except websockets.ConnectionClosed as closed:
            self.closed_codes.append(closed.rcvd.code if closed.rcvd else None)
        except Exception as error:
            # A client bug must fail the test, not leave it waiting for an ack.
            self.failure = error
            raise
        finally:
            if self.socket is socket:
                self.socket = None

    async def reconnect(self, attempts=100, server=None):
        """Reconnect (to `server` if given, else the same one) with the version held; the
        in-flight edit is resent after `joined`. `server` may be a function that picks the
        server before each attempt, as a load balancer would."""
        self.joined_version = None
        for _ in range(attempts):
            picked = server() if callable(server) else server
            self.server = picked or self.server
            try:
                await self.connect()
                return
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError("could not reconnect")

    @property
    def connected(self):
        return self.socket is not None

    async def close(self):
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
