"""The HTTP fallback transport: an event stream down, POSTed lines up, the same hub."""

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import ApplicationCommunicator
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.asgi import get_asgi_application
from django.test import AsyncClient

from collab import eventstream, metrics, store
from collab.eventstream import event_stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class HttpClient:
    """A browser on the fallback transport: reads the event stream, POSTs its messages."""

    def __init__(self, user, document_id, origin=None, client_id="http-client-0001"):
        headers = [(b"host", b"testserver")]
        if origin:
            headers.append((b"origin", origin.encode()))
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/documents/{document_id}/live/events/",
            "headers": headers,
            "user": user,
            "url_route": {"kwargs": {"document_id": document_id}},
        }
        self.stream = ApplicationCommunicator(event_stream, scope)
        self.document_id = document_id
        self.client_id = client_id
        self.user = user
        self.http = AsyncClient(enforce_csrf_checks=True)
        self.csrf = None
        self.buffer = b""
        self.ended = False
        self.token = None
        self.posts = 0

    async def open(self):
        """Start the stream; returns the response status."""
        await self.stream.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.stream.receive_output(2)
        assert start["type"] == "http.response.start"
        if start["status"] == 200:
            headers = dict(start["headers"])
            assert headers[b"content-type"].startswith(b"text/event-stream")
        return start["status"]

    async def login(self):
        await self.http.aforce_login(self.user)
        response = await self.http.get("/")  # sets the CSRF cookie like the page would
        self.csrf = response.cookies["csrftoken"].value if "csrftoken" in response.cookies else None
        if self.csrf is None:
            from django.middleware.csrf import _get_new_csrf_string

            self.csrf = _get_new_csrf_string()
            self.http.cookies["csrftoken"] = self.csrf

    async def event(self, timeout=2):
        """The next `data:` event as a message (keepalive comments are skipped)."""
        while b"\n\n" not in self.buffer:
            output = await self.stream.receive_output(timeout)
            assert output["type"] == "http.response.body", output
            self.buffer += output["body"]
            if not output.get("more_body"):
                self.ended = True
        raw, self.buffer = self.buffer.split(b"\n\n", 1)
        if raw.startswith(b":"):
            return await self.event(timeout)
        assert raw.startswith(b"data: "), raw
        return json.loads(raw[len(b"data: ") :])

    async def event_type(self, kind, timeout=2):
        while True:
            message = await self.event(timeout)
            if message["type"] == kind:
                return message
            assert message["type"] in {"presence", "leave"}, message

    async def finished(self, timeout=2):
        """Whether the server ended the response (after the events already read)."""
        while not self.ended:
            output = await self.stream.receive_output(timeout)
            self.buffer += output["body"]
            self.ended = not output.get("more_body")
        return self.buffer == b""

    async def post(self, *messages, token=None, csrf=True, number=None):
        body = "\n".join(json.dumps(m) for m in messages)
        if number is None:
            self.posts += 1
            number = self.posts
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        if number:
            headers["X-Tandem-Post"] = str(number)
        return await self.http.post(
            f"/documents/{self.document_id}/live/{token or self.token}/",
            data=body,
            content_type="text/plain",
            headers=headers,
        )

    async def join(self, version=None):
        assert await self.open() == 200
        self.token = (await self.event())["token"]
        await self.login()
        response = await self.post({"type": "hello", "client_id": self.client_id,
                                    "version": version})  # fmt: skip
        assert response.status_code == 204
        return await self.event_type("joined")

    async def disconnect(self):
        await self.stream.send_input({"type": "http.disconnect"})
        await self.stream.wait(2)


def counted(name, **labels):
    return metrics.REGISTRY.get_sample_value(name, labels) or 0


async def content_in_db(document):
    loaded = await sync_to_async(store.load)(document.pk)
    return loaded.version, loaded.content.ops


async def test_http_and_websocket_clients_edit_together(connect, document, owner, editor_user):
    web = HttpClient(owner, document.pk)
    joined = await web.join()
    assert joined["version"] == 0 and joined["content"] == [{"insert": "\n"}]
    sock = await connect(editor_user, document)
    assert [p["user"]["name"] for p in sock.joined["presence"]] == ["olivia"]

    assert (await web.post({"type": "submit", "seq": 1, "version": 0,
                            "delta": [{"insert": "from http "}]})).status_code == 204  # fmt: skip
    assert await web.event_type("ack") == {"type": "ack", "seq": 1, "version": 1}
    got = (await sock.receive_type("ops"))["ops"][0]
    assert got["delta"] == [{"insert": "from http "}] and got["client_id"] == web.client_id

    await sock.submit(1, [{"retain": 10}, {"insert": "and socket"}])
    assert (await sock.receive_type("ack"))["version"] == 2
    theirs = (await web.event_type("ops"))["ops"]
    assert [op["version"] for op in theirs] == [2]
    assert await content_in_db(document) == (2, [{"insert": "from http and socket\n"}])


async def test_resent_edit_over_http_is_applied_once(engine, document, owner):
    fallbacks = counted("tandem_fallbacks_total")
    reconnects = counted("tandem_reconnects_total", transport="http")
    web = HttpClient(owner, document.pk)
    await web.join()
    assert counted("tandem_fallbacks_total") == fallbacks + 1
    edit = {"type": "submit", "seq": 1, "version": 0, "delta": [{"insert": "once"}]}
    await web.post(edit)
    assert (await web.event_type("ack"))["version"] == 1
    await web.disconnect()

    again = HttpClient(owner, document.pk, client_id=web.client_id)
    joined = await again.join(version=0)
    assert [op["seq"] for op in joined["ops"]] == [1]
    assert counted("tandem_reconnects_total", transport="http") == reconnects + 1
    await again.post(edit)
    assert await again.event_type("ack") == {"type": "ack", "seq": 1, "version": 1}
    assert await content_in_db(document) == (1, [{"insert": "once\n"}])


async def test_messages_in_one_post_are_handled_in_order(engine, document, owner):
    web = HttpClient(owner, document.pk)
    await web.join()
    await web.post(
        {"type": "submit", "seq": 1, "version": 0, "delta": [{"insert": "a"}]},
        {"type": "ping", "id": 7},
        {"type": "fetch", "from": 0},
    )
    assert (await web.event())["type"] == "pong"
    assert (await web.event())["type"] == "ops"
    assert (await web.event_type("ack"))["seq"] == 1


async def test_bad_lines_get_errors_and_change_nothing(engine, document, owner):
    web = HttpClient(owner, document.pk)
    await web.join()
    refused = counted("tandem_rejected_messages_total", code="does_not_fit")
    response = await web.post({"type": "submit", "seq": 1, "version": 0,
                               "delta": [{"retain": 99}, {"insert": "x"}]})  # fmt: skip
    assert response.status_code == 204
    assert (await web.event())["code"] == "does_not_fit"
    assert counted("tandem_rejected_messages_total", code="does_not_fit") == refused + 1
    await web.post({"type": "nonsense"})
    assert (await web.event())["code"] == "bad_message"
    assert await content_in_db(document) == (0, [{"insert": "\n"}])


async def test_content_the_editor_cannot_render_is_refused_over_http(engine, document, owner):
    web = HttpClient(owner, document.pk)
    await web.join()
    await web.post({"type": "submit", "seq": 1, "version": 0, "delta": [{"insert": {"foo": 1}}]})
    error = await web.event_type("error")
    assert (error["code"], error["seq"]) == ("bad_delta", 1)
    assert await content_in_db(document) == (0, [{"insert": "\n"}])
    await web.post({"type": "submit", "seq": 1, "version": 0, "delta": [{"insert": "ok"}]})
    assert (await web.event_type("ack"))["version"] == 1


async def test_post_needs_csrf_token_and_the_streams_owner(engine, document, owner, editor_user):
    web = HttpClient(owner, document.pk)
    await web.join()
    assert (await web.post({"type": "ping", "id": 1}, csrf=False)).status_code == 403
    intruder = HttpClient(editor_user, document.pk)
    await intruder.login()
    response = await intruder.post({"type": "ping", "id": 1}, token=web.token)
    assert response.status_code == 403 and response.json()["code"] == "not_yours"
    response = await web.post({"type": "ping", "id": 1}, token="no-such-token")
    assert response.status_code == 410 and response.json()["code"] == "no_session"


async def test_stream_refuses_strangers_and_anonymous(engine, document, stranger):
    anonymous = HttpClient(AnonymousUser(), document.pk)
    assert await anonymous.open() == 200
    assert await anonymous.event() == {"type": "close", "code": 4401}
    assert await anonymous.finished()
    outsider = HttpClient(stranger, document.pk)
    await outsider.open()
    assert await outsider.event() == {"type": "close", "code": 4404}


async def test_cross_origin_stream_is_refused(engine, document, owner):
    web = HttpClient(owner, document.pk, origin="https://evil.example")
    assert await web.open() == 403


async def test_closing_the_stream_leaves_the_document(engine, connect, document, owner,
                                                     editor_user):  # fmt: skip
    web = HttpClient(owner, document.pk)
    await web.join()
    sock = await connect(editor_user, document)
    await web.disconnect()
    assert (await sock.receive_type("leave"))["session"] == sock.joined["presence"][0]["session"]
    assert web.token not in eventstream.streams
    # With one process the token is simply gone; with Redis it names this process, and the
    # POST is sent there, where no stream takes it.
    expected = 202 if engine.registry.bridge.shared else 410
    assert (await web.post({"type": "ping", "id": 1})).status_code == expected


async def test_silent_http_client_is_closed_by_the_heartbeat(engine, document, owner, settings):
    web = HttpClient(owner, document.pk)
    await web.join()
    stream = eventstream.streams[web.token]
    stream.edit.last_heard = time.monotonic() - settings.TANDEM_HEARTBEAT_TIMEOUT - 1
    await engine.registry.hubs[document.pk].tick()
    assert await web.event_type("close") == {"type": "close", "code": 4408}
    assert await web.finished()


async def test_forwarded_lines_reach_the_stream(engine, document, owner, editor_user):
    """What another process's POST turns into when it arrives over the channel layer."""
    web = HttpClient(owner, document.pk)
    await web.join()
    message = {"type": "http.forward", "document": document.pk, "token": web.token,
               "user": owner.pk, "number": 2, "lines": ['{"type": "ping", "id": 3}']}  # fmt: skip
    await engine.registry.dispatch(message)
    assert await web.event() == {"type": "pong", "id": 3, "version": 0}
    await engine.registry.dispatch({**message, "user": editor_user.pk, "number": 3})
    with pytest.raises(asyncio.TimeoutError):
        await web.event(timeout=0.3)


async def test_posts_are_handled_in_the_clients_order(engine, document, owner):
    """A POST forwarded through another process may arrive after the next one."""
    web = HttpClient(owner, document.pk)
    await web.join()  # POST 1
    assert (await web.post({"type": "ping", "id": 3}, number=3)).status_code == 204
    assert (await web.post({"type": "ping", "id": 2}, number=2)).status_code == 204
    assert (await web.event())["id"] == 2
    assert (await web.event())["id"] == 3
    await web.post({"type": "ping", "id": 99}, number=2)  # a repeat is dropped
    await web.post({"type": "ping", "id": 4}, number=4)
    assert (await web.event())["id"] == 4
    response = await web.post({"type": "ping", "id": 5}, number=0)
    assert response.status_code == 400 and response.json()["code"] == "bad_message"


async def test_a_session_that_never_says_hello_is_closed(engine, document, owner, settings,
                                                         open_socket):  # fmt: skip
    settings.TANDEM_HEARTBEAT_TIMEOUT = 0.3
    web = HttpClient(owner, document.pk)
    assert await web.open() == 200
    assert (await web.event())["type"] == "transport"
    assert await web.event() == {"type": "close", "code": 4408}
    sock = await open_socket(owner, document.pk)
    assert await sock.closed_with() == 4408


def refusal(response):
    """(status, the JSON body's code or None)."""
    json_body = response.headers.get("Content-Type") == "application/json"
    return response.status_code, response.json()["code"] if json_body else None


@pytest.fixture
def forwards(monkeypatch):
    """Every http.forward sent into the channel layer (passed on to the real layer)."""
    layer = get_channel_layer()
    sent, send = [], layer.send

    async def counting(channel, message):
        if message.get("type") == "http.forward":
            sent.append(channel)
        await send(channel, message)

    monkeypatch.setattr(layer, "send", counting)
    return sent


async def test_made_up_tokens_are_refused_before_anything_is_queued(
    engine, document, owner, editor_user, forwards
):
    web = HttpClient(owner, document.pk)
    await web.join()
    other = await sync_to_async(type(document).objects.create)(title="Other", owner=owner)
    name = "tandem.process.inmemory!victim"  # what a token's channel part looked like
    made_up = [
        f"{'x' * 32}.{name}",
        signing.dumps({"r": "x", "u": owner.pk, "d": document.pk, "c": name}, salt="other"),
        web.token[:-2] + ("AA" if not web.token.endswith("AA") else "BB"),
    ]
    statuses = []
    for number in range(1, 102):  # the 101st to one name answered 500 (in-memory layer full)
        response = await web.post({"type": "ping", "id": number}, token=made_up[0],
                                  number=number)  # fmt: skip
        statuses.append(refusal(response))
    for token in made_up[1:]:
        response = await web.post({"type": "ping", "id": 1}, token=token, number=1)
        statuses.append(refusal(response))
    assert statuses == [(410, "no_session")] * 103
    # A real token on another document's URL, and another user's token, are refused as well.
    elsewhere = HttpClient(owner, other.pk)
    await elsewhere.login()
    response = await elsewhere.post({"type": "ping", "id": 1}, token=web.token, number=1)
    assert refusal(response) == (410, "no_session")
    intruder = HttpClient(editor_user, document.pk)
    await intruder.login()
    response = await intruder.post({"type": "ping", "id": 1}, token=web.token, number=9)
    assert refusal(response) == (403, "not_yours")
    assert forwards == []
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        assert name not in layer.channels
    await web.post({"type": "ping", "id": "still"})  # the real stream is unaffected
    assert await web.event_type("pong") == {"type": "pong", "id": "still", "version": 0}


async def test_a_full_channel_layer_answers_503(engine, document, owner, monkeypatch):
    """A genuine token of a process whose queue is full (a list layer, the process gone)."""
    layer = InMemoryChannelLayer(capacity=3)
    monkeypatch.setattr(eventstream, "get_channel_layer", lambda: layer)
    channel = await layer.new_channel("tandem.process.")  # nobody receives from it
    web = HttpClient(owner, document.pk)
    await web.login()
    token = eventstream.make_token(owner.pk, document.pk, channel)
    statuses = []
    for number in range(1, 5):
        response = await web.post({"type": "ping", "id": number}, token=token, number=number)
        statuses.append(refusal(response))
    assert statuses == [(202, None)] * 3 + [(503, "unavailable")]
    assert response.json()["type"] == "error"


async def test_a_body_over_the_upload_limit_is_too_large_not_a_page(engine, document, owner):
    """Twelve lines, each under the message limit, make a body over Django's 2.5 MB: the
    answer is the documented 413 a client can read, not Django's HTML 400."""
    web = HttpClient(owner, document.pk)
    await web.join()
    response = await web.post(*[{"type": "ping", "id": "x" * 250_000}] * 12, number=2)
    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    response = await web.post({"type": "ping", "id": 7}, number=2)  # nothing took number 2
    assert response.status_code == 204
    assert await web.event_type("pong") == {"type": "pong", "id": 7, "version": 0}


async def test_a_post_over_the_body_limit_is_refused_unread(engine, document, owner, settings):
    web = HttpClient(owner, document.pk)
    await web.join()
    limit = eventstream.max_post_bytes()
    ping = json.dumps({"type": "ping", "id": 1})
    edit = "x" * (settings.TANDEM_MAX_MESSAGE_BYTES - 100)  # each line under the limit
    big = [{"type": "submit", "seq": n, "version": 0, "delta": [{"insert": edit}]}
           for n in (1, 2, 3)]  # fmt: skip
    assert len("\n".join(json.dumps(m) for m in big)) > limit
    response = await web.post(*big)
    assert refusal(response) == (413, "too_large")

    # A chunked body declares no length: it is read up to the limit and refused there.
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in web.http.cookies.items())
    scope = {
        "type": "http", "method": "POST", "path": f"/documents/{document.pk}/live/{web.token}/",
        "query_string": b"", "scheme": "http", "server": ("testserver", 80),
        "client": ("127.0.0.1", 1), "asgi": {"version": "3.0"}, "http_version": "1.1",
        "headers": [(b"host", b"testserver"), (b"cookie", cookies.encode()),
                    (b"x-csrftoken", web.csrf.encode()), (b"x-tandem-post", b"2"),
                    (b"content-type", b"text/plain;charset=UTF-8")],
    }  # fmt: skip
    app = ApplicationCommunicator(get_asgi_application(), scope)
    chunk = (ping + "\n") * (limit // len(ping) // 2)
    for _ in range(3):
        await app.send_input({"type": "http.request", "body": chunk.encode(), "more_body": True})
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(5)
    body = await app.receive_output(5)
    assert start["status"] == 413 and json.loads(body["body"])["code"] == "too_large"
    await app.wait(5)

    # Under the limit, with its length declared or not, a POST goes through.
    assert (await web.post({"type": "ping", "id": 2}, number=2)).status_code == 204
    assert await web.event_type("pong") == {"type": "pong", "id": 2, "version": 0}
