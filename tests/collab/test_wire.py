"""Frames written straight onto daphne's sockets (collab/wire.py)."""

import asyncio
import functools
import socket
from collections import deque
from types import SimpleNamespace

import pytest
from autobahn.websocket.protocol import WebSocketProtocol
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol as DaphneSocket

from collab import wire
from collab.ot import Delta
from tests.collab.wsclient import WsClient, session_cookie
from tests.live_server import DaphneServer, create_documents, create_users, sqlite_database


def test_only_daphnes_own_send_leads_to_its_socket():
    server = Server.__new__(Server)  # only its bound handle_reply is needed
    protocol = DaphneSocket()
    assert wire.direct_socket(functools.partial(server.handle_reply, protocol)) is protocol

    async def other_send(message):
        pass

    assert wire.direct_socket(other_send) is None
    assert wire.direct_socket(functools.partial(other_send)) is None
    assert wire.direct_socket(functools.partial(server.handle_reply, object())) is None


@pytest.fixture
def socket_pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    yield ours, theirs
    ours.close()
    theirs.close()


def fake_protocol(sock, state=WebSocketProtocol.STATE_OPEN):
    buffered = []
    transport = SimpleNamespace(
        connected=True, disconnecting=False, TLS=False, _tempDataLen=0, offset=0, dataBuffer=b"",
        socket=sock, write=buffered.append,
    )  # fmt: skip
    protocol = SimpleNamespace(state=state, _perMessageCompress=None, send_queue=deque(),
                               transport=transport)  # fmt: skip
    return protocol, buffered


def read_frame(sock, size):
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_a_frame_goes_to_an_idle_socket_at_once(socket_pair):
    ours, theirs = socket_pair
    protocol, buffered = fake_protocol(ours)
    assert wire.send_text(protocol, '{"type":"ops"}')
    assert read_frame(theirs, 16) == b"\x81\x0e" + b'{"type":"ops"}'  # FIN + text, unmasked
    assert buffered == []


def test_what_the_kernel_does_not_take_goes_to_twisteds_buffer(socket_pair):
    ours, theirs = socket_pair
    protocol, buffered = fake_protocol(ours)
    text = "x" * 4_000_000
    assert wire.send_text(protocol, text)
    assert len(buffered) == 1
    header = b"\x81\x7f" + len(text).to_bytes(8, "big")
    frame = header + text.encode()
    sent = frame[: len(frame) - len(buffered[0])]
    assert sent and sent + buffered[0] == frame
    assert read_frame(theirs, len(sent)) == sent


def test_a_busy_socket_keeps_its_order_and_a_closing_one_drops_the_frame(socket_pair):
    ours, theirs = socket_pair
    protocol, buffered = fake_protocol(ours)
    protocol.transport._tempDataLen = 10  # Twisted still holds earlier bytes
    assert wire.send_text(protocol, "late")
    assert buffered == [b"\x81\x04late"]
    for state in (WebSocketProtocol.STATE_CLOSING, WebSocketProtocol.STATE_CLOSED):
        closing, written = fake_protocol(ours, state=state)
        assert wire.send_text(closing, "late")  # handled: nothing goes to ASGI either
        assert written == []
    connecting, written = fake_protocol(ours, state=WebSocketProtocol.STATE_CONNECTING)
    assert not wire.send_text(connecting, "early")  # ASGI accepts the socket first
    assert written == []
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(16)


@pytest.mark.asyncio
async def test_a_large_broadcast_arrives_whole_through_daphne(tmp_path):
    env = {"DATABASE_URL": sqlite_database(tmp_path)}
    create_users({"ann": "pw-ann-123456", "ben": "pw-ben-123456"}, env=env)
    document = create_documents("ann", ["Big"], shares={"ben": "editor"}, env=env)["Big"]
    with DaphneServer(env=env, log_dir=tmp_path) as server:
        ann = WsClient("ann-client-1", session_cookie("ann", env), server, document)
        await ann.connect()
        piece = "".join(chr(97 + i % 26) for i in range(200_000))
        for _ in range(10):  # edits stay under the message limit; the document does not
            await ann.sim.edit(Delta([{"insert": piece}]))
            async with asyncio.timeout(20):
                while not ann.sim.settled:
                    await asyncio.sleep(0.01)
        # ben's `joined` holds 2 MB, far past what a socket takes at once.
        ben = WsClient("ben-client-1", session_cookie("ben", env), server, document)
        await ben.connect()
        assert ben.joined_version == 10
        assert ben.sim.doc.ops == [{"insert": piece * 10 + "\n"}]
        assert ben.sim.doc.ops == ann.sim.doc.ops
        await ann.close()
        await ben.close()
