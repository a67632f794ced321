"""The HTTP fallback transport across real daphne processes sharing PostgreSQL and Redis.

A client reads its event stream from one process and POSTs its messages to another, as
behind a load balancer without sticky sessions: the POSTs are forwarded over the channel
layer to the process holding the stream (docs/protocol.md, "HTTP fallback transport").
"""

import asyncio
import http.client
import json
import uuid
from http.cookies import SimpleCookie

import psycopg
import pytest

from collab.ot import Delta
from tests.collab.wsclient import WsClient, session_cookie
from tests.live_server import HOST, DaphneServer, create_documents, create_users, manage, run_python

pytestmark = pytest.mark.services

# Everything waits this long at most: the machine is shared and daphne starts slowly.
PATIENCE = 30


@pytest.fixture
def two_servers(postgres_url, redis_url, tmp_path):
    """Servers A and B on a fresh PostgreSQL database and Redis db, one user with a document."""
    database = f"tandem_fb_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    env = {
        "DATABASE_URL": postgres_url.rsplit("/", 1)[0] + f"/{database}",
        "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/6",
    }
    servers = []
    try:
        manage("migrate", "--noinput", env=env)
        create_users({"ann": "pw-ann-123456"}, env=env)
        document = create_documents("ann", ["Fallback"], env=env)["Fallback"]
        for _ in range(2):
            servers.append(DaphneServer(env=env, log_dir=tmp_path).start())
        yield env, document, servers[0], servers[1]
    finally:
        for server in servers:
            server.kill()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def stored_document(env, document):
    """(version, content ops) as the database has them, read by a fresh process."""
    code = f"""
import json
from collab import store
loaded = store.load({document})
print(json.dumps([loaded.version, loaded.content.ops]))
"""
    return run_python(code, env=env)


class EventStream:
    """The reading half of a fallback client: a raw HTTP/1.1 GET of the event stream."""

    def __init__(self, server, document, sessionid):
        self.server = server
        self.path = f"/documents/{document}/live/events/"
        self.sessionid = sessionid
        self.events = asyncio.Queue()  # messages, then None once the response has ended
        self.comments = 0
        self.ended = asyncio.Event()
        self.status = None
        self.headers = {}
        self._reader_task = None
        self._writer = None

    async def open(self):
        reader, self._writer = await asyncio.open_connection(HOST, self.server.port)
        request = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {HOST}:{self.server.port}\r\n"
            f"Cookie: sessionid={self.sessionid}\r\n"
            "Accept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        )
        self._writer.write(request.encode())
        await self._writer.drain()
        async with asyncio.timeout(PATIENCE):
            status_line = await reader.readline()
            self.status = int(status_line.split()[1])
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                self.headers[name.strip().lower()] = value.strip()
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))
        return self

    async def _read(self, reader):
        buffer = b""
        try:
            async for data in self._body(reader):
                buffer += data
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    self._event(block)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # a killed server resets the connection: the response has ended all the same
        finally:
            self.ended.set()
            self.events.put_nowait(None)

    async def _body(self, reader):
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            while data := await reader.read(65536):
                yield data
            return
        while True:
            size_line = await reader.readline()
            if not size_line:
                return  # the connection closed without the last chunk
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)  # the CRLF after each chunk

    def _event(self, block):
        data = []
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            self.events.put_nowait(json.loads("\n".join(data)))

    async def event(self, timeout=PATIENCE):
        """The next message; None when the response has ended."""
        async with asyncio.timeout(timeout):
            return await self.events.get()

    async def event_type(self, kind, timeout=PATIENCE):
        """The next message of `kind`, skipping presence chatter."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.events.get()
                assert message is not None, f"the stream ended while waiting for {kind}"
                if message["type"] == kind:
                    return message
                assert message["type"] in {"presence", "leave"}, message

    async def close(self):
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)


class Poster:
    """The writing half: POSTs protocol lines with the session and CSRF cookies and header."""

    def __init__(self, sessionid):
        self.sessionid = sessionid
        self.csrf = {}  # server port -> csrftoken cookie it set
        self.numbers = {}  # token -> POSTs sent with it, as the browser numbers them

    def _request(self, server, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection(HOST, server.port, timeout=PATIENCE)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            reply = connection.getresponse()
            return reply.status, reply.getheader("Set-Cookie") or "", reply.read()
        finally:
            connection.close()

    def csrf_token(self, server):
        """The csrftoken cookie a page of `server` sets, as a browser would hold it."""
        if server.port not in self.csrf:
            status, set_cookie, _ = self._request(server, "GET", "/accounts/login/")
            assert status == 200
            self.csrf[server.port] = SimpleCookie(set_cookie)["csrftoken"].value
        return self.csrf[server.port]

    def post(self, server, document, token, *messages):
        """POST one JSON message per line; returns (status, decoded JSON body or None)."""
        csrf = self.csrf_token(server)
        self.numbers[token] = self.numbers.get(token, 0) + 1
        headers = {
            "X-Tandem-Post": str(self.numbers[token]),
            "Content-Type": "text/plain;charset=UTF-8",
            "Cookie": f"sessionid={self.sessionid}; csrftoken={csrf}",
            "X-CSRFToken": csrf,
            "Origin": server.url,
        }
        body = "\n".join(json.dumps(message) for message in messages).encode()
        status, _, reply = self._request(
            server, "POST", f"/documents/{document}/live/{token}/", body, headers
        )
        return status, json.loads(reply) if reply else None

    async def apost(self, *args):
        return await asyncio.to_thread(self.post, *args)


async def wait_for(predicate, timeout=PATIENCE):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("hello_to", ["stream", "other"])
def test_stream_on_one_process_posts_to_the_other(two_servers, hello_to):
    """The client's first POST (hello and an edit) goes to the stream's process or the other;
    every later POST goes to the other process."""
    env, document, a, b = two_servers
    sessionid = session_cookie("ann", env)
    poster = Poster(sessionid)
    client_id = "http-client-fb01"

    async def scenario():
        peer = WsClient("ws-client-fb02", sessionid, b, document)
        await peer.connect(timeout=PATIENCE)
        stream = await EventStream(a, document, sessionid).open()
        try:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = await stream.event()
            assert first["type"] == "transport" and first["token"]
            token = first["token"]

            # hello and the first edit in one POST.
            edit = [{"insert": "over http "}]
            status, _ = await poster.apost(
                a if hello_to == "stream" else b,
                document,
                token,
                {"type": "hello", "client_id": client_id, "version": None},
                {"type": "submit", "seq": 1, "version": 0, "delta": edit},
            )
            assert status == (204 if hello_to == "stream" else 202)
            joined = await stream.event_type("joined")
            assert joined["version"] == 0 and joined["role"] == "owner"
            doc = Delta(joined["content"])
            assert await stream.event_type("ack") == {"type": "ack", "seq": 1, "version": 1}
            doc = Delta(edit).apply_to(doc)

            # The WebSocket peer on B sees the edit committed by A.
            await wait_for(lambda: peer.sim.version == 1)
            assert peer.sim.doc.ops == doc.ops

            # And an edit of the peer reaches the stream on A.
            await peer.sim.edit(Delta().retain(len("over http ")).insert("and websocket"))
            ops = (await stream.event_type("ops"))["ops"]
            assert [(op["version"], op["client_id"]) for op in ops] == [(2, peer.sim.client_id)]
            doc = Delta(ops[0]["delta"]).apply_to(doc)
            await wait_for(lambda: peer.sim.settled)

            # A token that names no process is gone, on either process.
            for server in (a, b):
                status, reply = await poster.apost(
                    server, document, "no-such-token", {"type": "ping", "id": "lost"}
                )
                assert (status, reply["code"]) == (410, "no_session")

            # The session carries on: a ping and one more edit through B, answered on A.
            status, _ = await poster.apost(
                b,
                document,
                token,
                {"type": "ping", "id": 9},
                {"type": "submit", "seq": 2, "version": 2, "delta": [{"insert": "> "}]},
            )
            assert status == 202
            assert await stream.event_type("pong") == {"type": "pong", "id": 9, "version": 2}
            assert await stream.event_type("ack") == {"type": "ack", "seq": 2, "version": 3}
            doc = Delta([{"insert": "> "}]).apply_to(doc)
            await wait_for(lambda: peer.sim.version == 3)

            # A POST to A itself is handled there.
            status, _ = await poster.apost(a, document, token, {"type": "ping", "id": 10})
            assert status == 204
            assert (await stream.event_type("pong"))["id"] == 10
            assert peer.failure is None and not peer.sim.errors
            return doc, peer.sim.doc
        finally:
            await stream.close()
            await peer.close()

    http_doc, ws_doc = asyncio.run(asyncio.wait_for(scenario(), 4 * PATIENCE))
    assert http_doc.ops == ws_doc.ops == [{"insert": "> over http and websocket\n"}]
    assert stored_document(env, document) == [3, http_doc.ops]


def test_killing_the_process_ends_the_stream(two_servers):
    env, document, a, b = two_servers
    sessionid = session_cookie("ann", env)
    poster = Poster(sessionid)

    async def scenario():
        stream = await EventStream(a, document, sessionid).open()
        try:
            token = (await stream.event())["token"]
            hello = {"type": "hello", "client_id": "http-client-fb03", "version": None}
            status, _ = await poster.apost(a, document, token, hello)
            assert status == 204
            assert (await stream.event_type("joined"))["version"] == 0
            await asyncio.to_thread(a.kill)
            async with asyncio.timeout(PATIENCE):
                while (message := await stream.event()) is not None:
                    assert message["type"] in {"presence", "leave"}, message
            assert stream.ended.is_set()
            # B still answers; the lines are forwarded, and no process holds the stream.
            status, _ = await poster.apost(b, document, token, {"type": "ping", "id": 1})
            assert status == 202
        finally:
            await stream.close()

    asyncio.run(asyncio.wait_for(scenario(), 4 * PATIENCE))
