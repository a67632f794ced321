"""A person in a browser against real daphne processes: forms posted as the pages post them,
the document's WebSocket, and its HTTP fallback event stream.

    person = Browser(server).sign_up("ann")
    document = person.create_document("Notes")
    socket = await open_socket(server, document, person.session)
"""

import asyncio
import http.client
import json
import re
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import websockets

from tests.live_server import HOST

PASSWORD = "pw-correct-horse-1"
# Everything waits this long at most: the machine is shared and daphne starts slowly.
PATIENCE = 30


class Browser:
    """One browser's cookies on one site; `server` may be switched to post to another
    process of the same site (the cookies are the site's, as behind a load balancer)."""

    def __init__(self, server):
        self.server = server
        self.cookies = {}
        self.username = None

    @property
    def session(self):
        return self.cookies.get("sessionid")

    def request(self, method, path, fields=None, server=None, headers=None):
        """(status, headers, body); `fields` are posted as a form with the CSRF token."""
        server = server or self.server
        headers = {"Host": f"{HOST}:{server.port}", **(headers or {})}
        body = None
        if method == "POST":
            if "csrftoken" not in self.cookies:
                self.request("GET", "/accounts/login/", server=server)
            pairs = list(fields.items()) if isinstance(fields, dict) else list(fields or [])
            pairs = [(k, v) for k, v in pairs if k != "csrfmiddlewaretoken"]
            token = ("csrfmiddlewaretoken", self.cookies["csrftoken"])
            body = urlencode([token, *pairs], doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = server.url
            headers["Referer"] = server.url + path
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection(HOST, server.port, timeout=PATIENCE)
        try:
            connection.request(method, path, body=body, headers=headers)
            reply = connection.getresponse()
            content = reply.read()
        finally:
            connection.close()
        for header in reply.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return reply.status, reply.headers, content

    def post(self, path, fields=None, expect=302, server=None):
        status, headers, content = self.request("POST", path, fields, server=server)
        assert status == expect, (path, status, content[:3000])
        return headers

    def sign_up(self, username):
        self.username = username
        self.post("/accounts/signup/", {"username": username, "password1": PASSWORD,
                                        "password2": PASSWORD})  # fmt: skip
        assert self.session
        return self

    def log_in(self, username, password=PASSWORD):
        self.username = username
        self.post("/accounts/login/", {"username": username, "password": password})
        assert self.session
        return self

    def create_document(self, title):
        location = self.post("/documents/new/", {"title": title})["Location"]
        return int(re.search(r"/documents/(\d+)/", location).group(1))

    def share(self, document, username, role="editor"):
        self.post(f"/documents/{document}/share/", {"username": username, "role": role})


class Socket:
    """A document's WebSocket after `joined`; `closed` is set with the server's close code."""

    def __init__(self, connection, client_id):
        self.connection = connection
        self.client_id = client_id
        self.messages = asyncio.Queue()
        self.code = None
        self.closed = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        try:
            async for text in self.connection:
                self.messages.put_nowait(json.loads(text))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.code = self.connection.close_code
            self.closed.set()

    async def next_of_type(self, kind, timeout=PATIENCE):
        async with asyncio.timeout(timeout):
            while True:
                message = await self.messages.get()
                if message["type"] == kind:
                    return message

    async def send(self, **message):
        await self.connection.send(json.dumps(message))

    async def close_code(self, timeout=PATIENCE):
        """Wait for the server to close the socket; its close code."""
        async with asyncio.timeout(timeout):
            await self.closed.wait()
        return self.code

    async def close(self):
        await self.connection.close()
        await asyncio.gather(self.reader, return_exceptions=True)


async def connect_socket(server, document, session, origin=None, host=None):
    """The handshake alone (refusals raise websockets.InvalidStatus). `host` is the Host
    header, as a proxy passes the browser's on; the connection goes to `server` all the same.
    """
    return await websockets.connect(
        f"ws://{host or f'{HOST}:{server.port}'}/ws/documents/{document}/",
        host=HOST,
        port=server.port,
        origin=server.url if origin is None else origin,
        additional_headers={"Cookie": f"sessionid={session}"} if session else None,
        open_timeout=PATIENCE,
    )


async def open_socket(server, document, session, client_id, **kwargs):
    """A socket that said hello and was answered `joined` (kept as `socket.joined`)."""
    socket = Socket(await connect_socket(server, document, session, **kwargs), client_id)
    await socket.send(type="hello", client_id=client_id, version=None)
    socket.joined = await socket.next_of_type("joined")
    return socket


class _FormFields(HTMLParser):
    """The fields a browser would submit from the form with id `form_id`, unchanged."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields = []  # (name, value)
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or "disabled" in attrs:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.fields.append((name, attrs.get("value", "on")))
            elif kind not in ("submit", "button", "file", "image", "reset"):
                self.fields.append((name, attrs.get("value", "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields.append((self._select, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = [name, ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append(tuple(self._textarea))
            self._textarea = None


def form_fields(html, form_id):
    """[(name, value)] of a page's form as it stands, to change and post back."""
    parser = _FormFields(form_id)
    parser.feed(html.decode())
    return parser.fields
