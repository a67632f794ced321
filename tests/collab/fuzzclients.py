"""The clients of tests/collab/test_fuzz.py: a hostile one per transport, and what they check.

Each hostile session sends a script (tests/collab/fuzzmessages.py) and then proves it is not
wedged: a `ping` whose `pong` must come, and, once joined, one valid edit whose answer must
come. Every message the server sends it is checked against docs/protocol.md (its types,
error codes and close codes, read from the document itself), and so is every answer to a
POST of the HTTP fallback.
"""

import asyncio
import collections
import http.client
import json
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import websockets
from django.conf import settings

from collab.eventstream import max_post_bytes
from collab.session import MAX_ERRORS
from tests.collab import fuzzmessages as fm
from tests.live_server import HOST

CLOSE_SILENT = 4408
PATIENCE = 30  # seconds any answer may take on a busy machine
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
# Codes only a submit earns: their error must name its seq (docs/protocol.md, `error`).
EDIT_CODES = {"bad_delta", "document_too_large", "does_not_fit", "bad_sequence", "read_only"}


def _section(text, title):
    start = text.index(f"\n{title}\n")
    end = text.find("\n#", start + len(title) + 2)
    return text[start : end if end != -1 else None]


def _first_cells(section):
    return re.findall(r"^\| `([^`]+)` ", section, flags=re.M)


@dataclass(frozen=True)
class Documented:
    """What docs/protocol.md lets a server answer."""

    server_types: frozenset
    errors: frozenset
    closes: frozenset
    post_answers: frozenset  # (status, code or None); code "html" for Django's CSRF page

    @classmethod
    def read(cls, path=PROTOCOL):
        text = path.read_text()
        posts = set()
        for status, code in re.findall(r"^\| `(\d{3})`(?: `(\w+)`)?(?: \(HTML\))? \|", text,
                                       flags=re.M):  # fmt: skip
            posts.add((int(status), code or ("html" if status == "403" else None)))
        return cls(
            frozenset(_first_cells(_section(text, "## Server to client"))),
            frozenset(_first_cells(_section(text, "## Error codes"))),
            frozenset(int(c) for c in _first_cells(_section(text, "## Close codes"))),
            frozenset(posts),
        )


@dataclass
class Tally:
    """What the fuzzing did, for the closing figures and the checks after it."""

    messages_ws: int = 0
    messages_http: int = 0
    posts: int = 0
    sessions: int = 0
    closes: dict = field(default_factory=dict)  # close code -> times
    errors: dict = field(default_factory=dict)  # error code -> times
    drops: int = 0  # connections that ended without a close frame
    # (client ids the session said hello with, seq, version, session) of each ack to fuzzers
    acked: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    seqs: dict = field(default_factory=dict)  # client_id -> highest seq it sent

    def count(self, table, key):
        table[key] = table.get(key, 0) + 1


class Hostile:
    """One protocol session's side that both transports share: state, answers, checks."""

    def __init__(self, live, client_id, where):
        self.live = live
        self.client_id = client_id
        self.ids = {client_id}  # and any other a hello of the script named
        self.where = where
        self.sent = collections.deque(maxlen=6)  # the last frames, for a report
        self.version = 0
        self.joined = False
        self.refusals = 0  # errors received
        self.over_frame_bound = False  # sent a frame the server closes the socket for
        self.closed = None  # the close code, once the server closed the session
        self.messages = asyncio.Queue()
        self.live.tally.sessions += 1

    @property
    def tally(self):
        return self.live.tally

    def state(self):
        honest = self.live.honest.sim
        version = max(self.version, honest.version or 0)
        length = honest.doc.length() if honest.doc is not None else 1
        return {"version": version, "length": length, "seq": self.tally.seqs.get(self.client_id, 0)}

    def problem(self, what):
        self.tally.problems.append(f"{self.where}: {what}")

    def saw(self, message):
        """Check one server message and learn from it."""
        documented = self.live.documented
        if type(message) is not dict or message.get("type") not in documented.server_types:
            self.problem(f"undocumented message {message!r:.300}")
            return
        kind = message["type"]
        if kind == "error":
            self.refusals += 1
            code = message.get("code")
            self.tally.count(self.tally.errors, code)
            if code not in documented.errors:
                self.problem(f"undocumented error code {message!r:.300}")
            elif code in EDIT_CODES and type(message.get("seq")) is not int:
                self.problem(f"an edit's error without its seq {message!r:.300}")
        elif kind == "joined":
            self.joined = True
            self.where += f" (session {message['you']['session']})"
            self.version = max(self.version, message["version"])
        elif kind == "ack":
            self.version = max(self.version, message["version"])
            self.tally.acked.append((self.ids, message["seq"], message["version"], self.where))
        elif kind == "ops":
            for op in message["ops"]:
                self.version = max(self.version, op["version"])
                if op["client_id"] in self.ids:
                    self.tally.acked.append((self.ids, op["seq"], op["version"], self.where))
        self.messages.put_nowait(message)

    def dropped(self):
        """The connection ended without a close frame. After the errors that close a session
        (collab.session.MAX_ERRORS) the server did close it with 4400, and after a frame over
        TANDEM_MAX_FRAME_BYTES with 1009, but on a busy machine the close frame can be lost:
        the server shuts the connection while the client's frames are still arriving, and the
        reset discards it. Anything else is a crash."""
        self.tally.drops += 1
        if self.refusals < MAX_ERRORS and not self.over_frame_bound:
            self.problem(f"the connection dropped without a close frame, after {list(self.sent)}")
        self.messages.put_nowait(None)

    def server_closed(self, code):
        self.closed = code
        self.tally.count(self.tally.closes, code)
        if code not in self.live.documented.closes:
            self.problem(f"closed with undocumented code {code}")
        elif code == CLOSE_SILENT:
            # Every session here lasts seconds and talks all along: the server lost its frames.
            self.problem(f"a heartbeat close of a talking session, after {list(self.sent)}")
        self.messages.put_nowait(None)

    def outgoing(self, action):
        """The frames (text, or bytes for a binary one) an action sends now."""
        state = self.state()
        if isinstance(action, fm.Burst):
            messages = fm.burst_submits(action, state)
        elif action.kind == "message":
            messages = [fm.resolve(action.value, state)]
        else:
            frame = fm.resolve(action.value, state)
            self._note(frame)
            return [frame]
        frames = []
        for message in messages:
            if type(message) is dict and message.get("type") == "hello":
                if type(message.get("client_id")) is str:
                    self.ids.add(message["client_id"])
            seq = fm.seq_of(message)
            if seq is not None:
                self.tally.seqs[self.client_id] = max(seq, state["seq"])
            frames.append(fm.render(message))
            self._note(frames[-1])
        return frames

    def _note(self, frame):
        self.sent.append(frame[:80])
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", "replace"))
        self.over_frame_bound |= size > settings.TANDEM_MAX_FRAME_BYTES

    def hello(self):
        return json.dumps({"type": "hello", "client_id": self.client_id, "version": None})

    async def wait_for(self, predicate, what, send):
        """Read answers until one satisfies `predicate` (True) or the session closes (False),
        pinging meanwhile as a browser does, so that no heartbeat close hides a lost answer."""
        beat = asyncio.get_running_loop().create_task(_heartbeat(send))
        try:
            async with asyncio.timeout(PATIENCE):
                while True:
                    message = await self.messages.get()
                    if message is None:
                        self.messages.put_nowait(None)
                        return False
                    if predicate(message):
                        return True
        except TimeoutError:
            self.problem(f"no answer to {what} within {PATIENCE}s, after {list(self.sent)}")
            return False
        finally:
            beat.cancel()

    async def prove_alive(self, send):
        """A ping must be answered; once joined, so must one valid edit."""
        marker = f"end-{self.tally.sessions}"
        await send(json.dumps({"type": "ping", "id": marker}))
        answered = await self.wait_for(
            lambda m: m["type"] == "pong" and m["id"] == marker, "the closing ping", send
        )
        if not answered or not self.joined:
            return
        seq = self.tally.seqs.get(self.client_id, 0) + 1
        self.tally.seqs[self.client_id] = seq
        edit = {"type": "submit", "seq": seq, "version": self.state()["version"],
                "delta": [{"insert": "~"}]}  # fmt: skip
        await send(json.dumps(edit))

        def answers(message):
            if message["type"] in ("ack", "error"):
                return message.get("seq") == seq
            if message["type"] == "ops":
                return any(op["client_id"] in self.ids and op["seq"] == seq
                           for op in message["ops"])  # fmt: skip
            return False

        await self.wait_for(answers, "a valid edit after the fuzzing", send)


async def _heartbeat(send):
    while True:
        await asyncio.sleep(5)
        await send(json.dumps({"type": "ping", "id": "heartbeat"}))


async def fuzz_socket(live, server, script):
    """Send `script` over a WebSocket, reconnecting after a documented close."""
    client_id = live.fuzz_client(script.client)
    actions = list(script.actions)
    while True:
        session = Hostile(live, client_id, f"ws {client_id}")
        socket = await websockets.connect(
            f"{server.ws_url}/ws/documents/{live.document}/",
            origin=server.url,
            additional_headers={"Cookie": f"sessionid={live.fuzz_cookie}"},
            max_size=2**24,
        )
        reader = asyncio.get_running_loop().create_task(_read_socket(socket, session))

        async def send(frame, socket=socket):
            try:
                await socket.send(frame)
            except websockets.ConnectionClosed:
                pass

        try:
            if script.hello_first:
                await send(session.hello())
            while actions and session.closed is None:
                for frame in session.outgoing(actions.pop(0)):
                    await send(frame)
                    live.tally.messages_ws += 1
            if session.closed is None:
                await session.prove_alive(send)
        finally:
            await socket.close()
            await asyncio.gather(reader, return_exceptions=True)
        if not actions:
            return


async def _read_socket(socket, session):
    try:
        async for frame in socket:
            if not isinstance(frame, str):
                session.problem(f"a binary frame from the server {frame[:50]!r}")
                continue
            session.saw(json.loads(frame))
    except websockets.ConnectionClosed as closed:
        if closed.rcvd is None:
            if closed.sent is None:
                session.dropped()
        elif closed.sent is None or closed.rcvd_then_sent:
            session.server_closed(closed.rcvd.code)


# -- the HTTP fallback -----------------------------------------------------------------------


class Stream:
    """An event stream read over a raw HTTP/1.1 connection."""

    def __init__(self, server, document, sessionid, session):
        self.server = server
        self.path = f"/documents/{document}/live/events/"
        self.sessionid = sessionid
        self.session = session
        self.token = None
        self.ending = False  # we are closing it
        self.task = None
        self.writer = None

    async def open(self):
        reader, self.writer = await asyncio.open_connection(HOST, self.server.port)
        self.writer.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {HOST}:{self.server.port}\r\n"
            f"Cookie: sessionid={self.sessionid}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        async with asyncio.timeout(PATIENCE):
            status = int((await reader.readline()).split()[1])
            headers = b""
            while (line := await reader.readline()) not in (b"\r\n", b""):
                headers += line.lower()
        assert status == 200, status
        first = asyncio.get_running_loop().create_future()
        chunked = b"transfer-encoding: chunked" in headers
        self.task = asyncio.get_running_loop().create_task(self._read(reader, chunked, first))
        async with asyncio.timeout(PATIENCE):
            self.token = await first
        return self

    async def _read(self, reader, chunked, first):
        buffer = b""
        ended = False
        try:
            async for data in _body(reader, chunked):
                buffer += data
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    ended |= self._event(block, first)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the end of the response all the same
        if not ended and not self.ending:
            self.session.problem("the event stream ended without a close event")
            self.session.messages.put_nowait(None)
        if not first.done():
            first.set_exception(AssertionError("the stream ended before its transport event"))

    def _event(self, block, first):
        """Handle one event; True when it was the closing one."""
        if block.startswith(b":"):
            return False
        if not block.startswith(b"data: ") or b"\n" in block:
            self.session.problem(f"not one data line: {block[:200]!r}")
            return False
        message = json.loads(block[6:])
        if message.get("type") == "transport" and not first.done():
            first.set_result(message["token"])
        elif message.get("type") == "close":
            self.session.server_closed(message.get("code"))
            return True
        else:
            self.session.saw(message)
        return False

    async def close(self):
        self.ending = True
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def _body(reader, chunked):
    if not chunked:
        while data := await reader.read(65536):
            yield data
        return
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        yield await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF


class Poster:
    """POSTs lines to a stream, numbered as the browser numbers them unless told otherwise."""

    def __init__(self, live):
        self.live = live
        self.csrf = {}

    def _request(self, server, path, body, headers):
        connection = http.client.HTTPConnection(HOST, server.port, timeout=PATIENCE)
        try:
            connection.request("POST" if body is not None else "GET", path, body=body,
                               headers=headers)  # fmt: skip
            reply = connection.getresponse()
            return (
                reply.status,
                reply.getheader("Content-Type") or "",
                reply.getheader("Set-Cookie") or "",
                reply.read(),
            )
        finally:
            connection.close()

    def csrf_token(self, server):
        if server.port not in self.csrf:
            _, _, cookie, _ = self._request(server, "/accounts/login/", None, {})
            self.csrf[server.port] = SimpleCookie(cookie)["csrftoken"].value
        return self.csrf[server.port]

    def post(self, server, document, token, body, number, csrf=True):
        """(status, error code or None; "html" for a page)."""
        token_csrf = self.csrf_token(server)
        headers = {
            "Content-Type": "text/plain;charset=UTF-8",
            "Cookie": f"sessionid={self.live.fuzz_cookie}; csrftoken={token_csrf}",
            "Origin": server.url,
        }
        if csrf:
            headers["X-CSRFToken"] = token_csrf
        if number is not None:
            headers["X-Tandem-Post"] = str(number)
        status, kind, _, reply = self._request(
            server, f"/documents/{document}/live/{token}/", body, headers
        )
        if not reply:
            return status, None
        if kind.startswith("application/json"):
            return status, json.loads(reply).get("code")
        return status, "html"

    async def apost(self, *args, **kwargs):
        return await asyncio.to_thread(self.post, *args, **kwargs)


# What each refused POST is answered with (docs/protocol.md, "Posting messages"). A token of
# another document or of an ended stream is forwarded (202) by a process that does not hold it.
REFUSED = {
    "bad_utf8": {(400, "bad_json")},
    "too_many_lines": {(413, "too_large")},
    "huge_body": {(413, "too_large")},
    "no_number": {(400, "bad_message")},
    "zero": {(400, "bad_message")},
    "negative": {(400, "bad_message")},
    "text_number": {(400, "bad_message")},
    "no_csrf": {(403, "html")},
    "made_up_token": {(410, "no_session")},
    "other_document": {(410, "no_session"), (202, None)},
    "old_token": {(410, "no_session"), (202, None)},
}
NUMBERS = {"zero": 0, "negative": -3, "text_number": "x7", "no_number": None}


class HttpSession:
    """One event stream and its POSTs: a hostile client of the HTTP fallback."""

    def __init__(self, live, client_id, home):
        self.live = live
        self.home = home
        self.session = Hostile(live, client_id, f"http {client_id}")
        self.stream = Stream(home, live.document, live.fuzz_cookie, self.session)
        self.number = 0
        self.held = []  # a POST sent after the next one: out of order

    async def post(self, lines, shape):
        """POST `lines` (text or bytes each) shaped by `shape` (fuzzmessages.PostShape)."""
        live = self.live
        target = live.servers[shape.target % len(live.servers)]
        body = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
        live.tally.posts += 1
        mutation = shape.mutation
        faults = {mutation} & REFUSED.keys()
        if mutation != "too_many_lines" and not _utf8(body):
            faults.add("bad_utf8")  # a binary frame's bytes: the POST is refused whole
        if len(body) > max_post_bytes():
            faults.add("huge_body")  # a few lines near the message limit
        if faults:
            token, document, csrf = self.stream.token, live.document, True
            if mutation == "bad_utf8":
                body += b"\n\xff\xfe"
            elif mutation == "too_many_lines":
                body = b"\n".join([b'{"type":"ping"}'] * 201)
            elif mutation == "huge_body":
                body = b"\n".join([b"b" * 250_000] * 12)  # 12 lines, each under the limit
            elif mutation == "no_csrf":
                csrf = False
            elif mutation == "made_up_token":
                token = "madeup" + token[:24]
            elif mutation == "other_document":
                document = live.other_document
            elif mutation == "old_token":
                token = live.old_token or "no-old-token"
            number = NUMBERS.get(mutation, 1)
            answer = await live.poster.apost(target, document, token, body, number, csrf=csrf)
            # With several faults, the server may name any one of them.
            if answer not in set().union(*(REFUSED[fault] for fault in faults)):
                self.session.problem(f"POST ({', '.join(sorted(faults))}) answered {answer}")
            self._documented(answer)
            return
        self.number += 1
        if mutation == "early":
            self.held.append((target, body, self.number))
            return
        await self._numbered(target, body, self.number)
        if mutation == "duplicate":
            live.tally.posts += 1
            await self._numbered(target, body, self.number)  # dropped: already handled
        await self.release()

    async def release(self):
        while self.held:
            await self._numbered(*self.held.pop())

    async def _numbered(self, target, body, number):
        answer = await self.live.poster.apost(target, self.live.document, self.stream.token,
                                              body, number)  # fmt: skip
        expected = {(204, None)} if target is self.home else {(202, None)}
        if self.session.closed is not None:
            expected |= {(410, "no_session"), (202, None)}  # the stream ended meanwhile
        if answer not in expected:
            self.session.problem(f"POST answered {answer}, expected {sorted(expected)}")
        self._documented(answer)

    def _documented(self, answer):
        if answer not in self.live.documented.post_answers:
            self.session.problem(f"undocumented POST answer {answer}")


def _utf8(body):
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _lines(frames):
    """How many messages the server reads in these frames (one per non-blank line)."""
    return sum(
        len([x for x in frame.split("\n") if x.strip()]) if isinstance(frame, str) else 1
        for frame in frames
    )


async def fuzz_stream(live, script, plan):
    """Send `script` through the HTTP fallback in POSTs shaped by `plan`, opening a new
    stream after a documented close."""
    client_id = live.fuzz_client(script.client)
    actions = list(script.actions)
    shapes = list(plan.posts)
    while True:
        http = HttpSession(live, client_id, live.servers[plan.home % len(live.servers)])
        session = http.session
        await http.stream.open()
        try:
            lines = [session.hello()] if script.hello_first else []
            while actions and session.closed is None:
                shape = shapes.pop(0) if shapes else fm.PostShape(1, "normal", plan.home)
                for _ in range(shape.actions):
                    if actions:
                        lines.extend(session.outgoing(actions.pop(0)))
                live.tally.messages_http += _lines(lines)
                await http.post(lines, shape)
                lines = []
            await http.release()
            if session.closed is None:

                async def send(text, http=http):
                    await http.post([text], fm.PostShape(1, "normal", plan.home))

                await session.prove_alive(send)
        finally:
            live.old_token = http.stream.token
            await http.stream.close()
        if not actions:
            return
