"""Fixtures for driving the document socket with channels.testing.WebsocketCommunicator."""

import itertools
import json

import pytest
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from collab import hubs
from collab.routing import websocket_urlpatterns

_client_ids = itertools.count(1)


@pytest.fixture
async def engine():
    """A fresh hub registry and channel layer for each test's event loop."""
    channel_layers.backends = {}
    await hubs.reset()
    yield hubs
    await hubs.reset()


# Seconds to wait for a message that should come: generous, for a busy machine.
RECEIVE_TIMEOUT = 10


class Client:
    """One WebSocket client speaking the Tandem protocol, for tests."""

    def __init__(self, user, document_id, path=None):
        app = URLRouter(websocket_urlpatterns)
        self.ws = WebsocketCommunicator(app, path or f"/ws/documents/{document_id}/")
        self.ws.scope["user"] = user
        self.client_id = f"test-client-{next(_client_ids):04d}"
        self.seq = 0

    async def connect(self):
        connected, _ = await self.ws.connect()
        assert connected
        return self

    async def send(self, **message):
        await self.ws.send_to(text_data=json.dumps(message))

    async def receive(self, timeout=RECEIVE_TIMEOUT):
        return json.loads(await self.ws.receive_from(timeout=timeout))

    async def receive_type(self, kind, timeout=RECEIVE_TIMEOUT):
        """The next message of `kind` (or of any of a tuple of kinds), skipping presence."""
        while True:
            message = await self.receive(timeout)
            if message["type"] in (kind if isinstance(kind, tuple) else (kind,)):
                return message
            if message["type"] not in {"presence", "leave"}:
                raise AssertionError(f"expected {kind}, got {message}")

    async def hello(self, version=None):
        await self.send(type="hello", client_id=self.client_id, version=version)
        return await self.receive_type("joined")

    async def submit(self, version, delta, seq=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        await self.send(type="submit", seq=seq, version=version, delta=delta)
        return seq

    async def receive_commits(self, upto, timeout=RECEIVE_TIMEOUT):
        """Acks and broadcast ops until version `upto` is known: {version: "ack" or op}.

        An own edit is acknowledged by an `ack`, or, in a batch, by finding it in `ops`.
        """
        seen = {}
        while upto not in seen:
            message = await self.receive_type(("ack", "ops"), timeout)
            if message["type"] == "ack":
                seen[message["version"]] = "ack"
                continue
            for op in message["ops"]:
                own = op["client_id"] == self.client_id
                seen[op["version"]] = "ack" if own else op
        return seen

    async def closed_with(self, timeout=RECEIVE_TIMEOUT):
        """The close code, once any presence chatter before it is read."""
        while True:
            output = await self.ws.receive_output(timeout)
            if output["type"] == "websocket.send":
                kind = json.loads(output["text"])["type"]
                assert kind in {"presence", "leave"}, output
                continue
            assert output["type"] == "websocket.close", output
            return output.get("code")

    async def close(self):
        await self.ws.disconnect()


@pytest.fixture
def connect(engine):
    clients = []

    async def make(user, document, hello=True):
        client = await Client(user, document.pk).connect()
        clients.append(client)
        if hello:
            client.joined = await client.hello()
        return client

    yield make


@pytest.fixture
def open_socket(engine):
    """A connected socket to any document id, hello not sent."""

    async def make(user, document_id):
        return await Client(user, document_id).connect()

    return make
