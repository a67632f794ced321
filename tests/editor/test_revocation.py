"""Every way of losing access closes the user's sockets and event streams (editor.revocation).

Against real daphne processes: the person who loses access has a WebSocket and an HTTP
fallback event stream open on a document; the change is made as people make it (the pages,
the admin and its bulk actions, the password form), then the test waits for the close code on
both, checks that a later edit is not taken and that the person cannot open a new one. With
two processes (PostgreSQL and Redis) the change is made through one and the sessions are on
the other, so the close crosses the channel layer. How long each close took is printed.
"""

import asyncio
import contextlib
import itertools
import re
import time
import uuid

import psycopg
import pytest
import websockets

from tests.collab.livesite import (
    PASSWORD,
    PATIENCE,
    Browser,
    Socket,
    connect_socket,
    form_fields,
    open_socket,
)
from tests.collab.test_fallback_processes import EventStream, Poster
from tests.conftest import require_service
from tests.live_server import DaphneServer, manage, run_python, sqlite_database

ADMIN = "root"
# Every test logs several people in from 127.0.0.1 (docs/throttling.md): rates raised.
RATES = {"TANDEM_LOGIN_RATE": "1000/10m", "TANDEM_DOCUMENT_CREATE_RATE": "1000/h"}
# The fixtures' defaults (tests/conftest.py), for this module-scoped fixture.
POSTGRES_DEFAULT = "postgres://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
_names = itertools.count(1)


@pytest.fixture(
    scope="module",
    params=["one process", pytest.param("two processes", marks=pytest.mark.services)],
)
def site(request, tmp_path_factory):
    """(server for the changes, server for the sessions, environment)."""
    directory = tmp_path_factory.mktemp("revocation")
    database = None
    if request.param == "one process":
        env = {"DATABASE_URL": sqlite_database(directory), **RATES}
    else:
        postgres_url = require_service("TANDEM_TEST_POSTGRES_URL", POSTGRES_DEFAULT)
        redis_url = require_service("TANDEM_TEST_REDIS_URL", REDIS_DEFAULT)
        database = f"tandem_revoke_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        env = {
            "DATABASE_URL": postgres_url.rsplit("/", 1)[0] + f"/{database}",
            "REDIS_URL": redis_url,
            **RATES,
        }
        manage("migrate", "--noinput", env=env)
    manage("createsuperuser", "--noinput", "--username", ADMIN, "--email", "root@example.com",
           env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD})  # fmt: skip
    servers = []
    try:
        for _ in range(1 if request.param == "one process" else 2):
            servers.append(DaphneServer(env=env, log_dir=directory).start())
        yield servers[0], servers[-1], env
    finally:
        for server in servers:
            server.stop()
        if database is not None:
            with psycopg.connect(postgres_url, autocommit=True) as pg:
                pg.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


class Scene:
    """An owner and an editor of one document, both signed in through the login form."""

    def __init__(self, site):
        self.changes, self.live, self.env = site
        n = next(_names)
        # "x": no name is another's prefix, for the admin's searches.
        self.owner_name, self.editor_name = f"owner{n}x", f"editor{n}x"
        made = run_python(f"""
import json
from django.contrib.auth import get_user_model
from editor.models import Document, DocumentAccess
User = get_user_model()
owner = User.objects.create_user({self.owner_name!r}, password={PASSWORD!r})
editor = User.objects.create_user({self.editor_name!r}, password={PASSWORD!r})
document = Document.objects.create(owner=owner, title="Shared")
entry = DocumentAccess.objects.create(document=document, user=editor, role="editor")
print(json.dumps([owner.pk, editor.pk, document.pk, entry.pk]))
""", env=self.env)  # fmt: skip
        self.owner_id, self.editor_id, self.document, self.entry = made
        self.owner = Browser(self.changes).log_in(self.owner_name)
        self.editor = Browser(self.changes).log_in(self.editor_name)

    def admin(self):
        return Browser(self.changes).log_in(ADMIN)

    async def open(self, browser, client_id):
        """A socket and an event stream (joined) of `browser` on the sessions' server."""
        socket = await open_socket(self.live, self.document, browser.session, client_id)
        stream = await EventStream(self.live, self.document, browser.session).open()
        token = (await stream.event())["token"]
        poster = Poster(browser.session)
        hello = {"type": "hello", "client_id": client_id + "-http", "version": None}
        assert (await poster.apost(self.live, self.document, token, hello))[0] == 204
        await stream.event_type("joined")
        return Session(self, browser, socket, stream, poster, token)


class Session:
    """One browser's socket and event stream on the document."""

    def __init__(self, scene, browser, socket, stream, poster, token):
        self.scene, self.browser = scene, browser
        self.socket, self.stream, self.poster, self.token = socket, stream, poster, token
        self.seq = 0

    def edit(self, text="x"):
        self.seq += 1
        return {"type": "submit", "seq": self.seq, "version": 0, "delta": [{"insert": text}]}

    async def closed_with(self):
        """The close code the socket and the stream both got (waits for both)."""
        socket_code = await self.socket.close_code()
        close = await self.stream.event_type("close")
        assert await self.stream.event() is None  # the response ended after it
        assert close["code"] == socket_code, (close, socket_code)
        return socket_code

    async def edits_refused(self, code):
        """A later edit is not taken on either, and no new socket or stream is let in."""
        with pytest.raises(websockets.ConnectionClosed):
            await self.socket.send(**self.edit())
        status, body = await self.post(self.edit())
        if code == 4401:
            assert (status, body["code"]) == (403, "not_authenticated")
        else:
            # The stream it names is gone (410); with several processes the POST may be
            # forwarded to the one that held it (202), which drops it: it has ended.
            assert (status, body and body["code"]) in ((410, "no_session"), (202, None))
        again = await connect_refused(self.scene, self.browser)
        assert again == code

    async def edit_acked(self):
        await self.socket.send(**self.edit("still here "))
        ack = await self.socket.next_of_type("ack")
        assert ack["seq"] == self.seq
        status, _ = await self.post(self.edit("and here "))
        assert status == 204
        async with asyncio.timeout(PATIENCE):
            while (message := await self.stream.event())["type"] != "ack":
                assert message["type"] in {"ops", "presence", "leave"}, message
        assert message["seq"] == self.seq

    async def post(self, *messages):
        """POST on the stream with the browser's cookie of the moment, as a page would."""
        self.poster.sessionid = self.browser.session
        return await self.poster.apost(self.scene.live, self.scene.document, self.token,
                                       *messages)  # fmt: skip

    async def close(self):
        await self.socket.close()
        await self.stream.close()


async def connect_refused(scene, browser):
    """The close code a fresh socket of `browser` gets at once."""
    socket = Socket(await connect_socket(scene.live, scene.document, browser.session), "late")
    with contextlib.suppress(websockets.ConnectionClosed):  # it may be closed already
        await socket.send(type="hello", client_id="late-client", version=None)
    return await socket.close_code()


async def revoked(session, change, code, document_kept=True):
    """Make `change` (blocking HTTP, run in a thread); the close `code` must follow, and no
    edit sent after it reaches the document."""
    started = time.monotonic()
    await asyncio.to_thread(change)
    answered = time.monotonic()
    assert await session.closed_with() == code
    closed = time.monotonic()
    print(f"closed with {code}: {1000 * (closed - started):.0f} ms after the change was posted, "
          f"{1000 * max(0, closed - answered):.0f} ms after its answer")  # fmt: skip
    await session.edits_refused(code)
    if document_kept:
        owner = await open_socket(session.scene.live, session.scene.document,
                                  session.scene.owner.session, "owner-check")  # fmt: skip
        assert owner.joined["version"] == 0
        await owner.close()


def scenario(site, body):
    scene = Scene(site)
    asyncio.run(asyncio.wait_for(body(scene), 4 * PATIENCE))


def admin_ids(admin, path, query):
    """The ids the admin's changelist at `path` lists for the search `query`."""
    status, _, page = admin.request("GET", f"{path}?q={query}")
    assert status == 200
    return re.findall(rb'name="_selected_action" value="(\d+)"', page)


# -- the ways that closed sessions before ------------------------------------------------


def test_removing_access_on_the_sharing_page(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "unshared")
        url = f"/documents/{scene.document}/share/{scene.editor_id}/remove/"
        await revoked(editor, lambda: scene.owner.post(url), 4404)

    scenario(site, body)


def test_a_downgrade_to_viewer_makes_both_read_only(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "downgraded")
        share = {"username": scene.editor_name, "role": "viewer"}
        await asyncio.to_thread(scene.owner.post, f"/documents/{scene.document}/share/", share)
        lock = {"type": "lock", "locked": False, "readonly": True}
        assert await editor.socket.next_of_type("lock") == lock
        assert await editor.stream.event_type("lock") == lock
        await editor.socket.send(**editor.edit())
        assert (await editor.socket.next_of_type("error"))["code"] == "read_only"
        await editor.post(editor.edit())
        assert (await editor.stream.event_type("error"))["code"] == "read_only"
        await editor.close()

    scenario(site, body)


def test_deleting_one_access_entry_in_the_admin(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "entry-deleted")
        admin = scene.admin()
        url = f"/admin/editor/documentaccess/{scene.entry}/delete/"
        await revoked(editor, lambda: admin.post(url, {"post": "yes"}), 4404)

    scenario(site, body)


def test_deleting_the_document_on_its_page(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "document-deleted")
        url = f"/documents/{scene.document}/delete/"
        await revoked(editor, lambda: scene.owner.post(url), 4404, document_kept=False)

    scenario(site, body)


def test_logging_out(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "logged-out")
        await revoked(editor, lambda: scene.editor.post("/accounts/logout/"), 4401)

    scenario(site, body)


# -- the ways that left sessions open ----------------------------------------------------


def test_a_password_change_closes_the_other_browsers_and_keeps_this_one(site):
    async def body(scene):
        elsewhere = await scene.open(scene.editor, "other-browser")
        here = Browser(scene.changes).log_in(scene.editor_name)
        this_one = await scene.open(here, "this-browser")
        form = {"old_password": PASSWORD, "new_password1": "pw-new-horse-2",
                "new_password2": "pw-new-horse-2"}  # fmt: skip
        await revoked(elsewhere, lambda: here.post("/accounts/password_change/", form), 4401)
        # The browser that changed it stays signed in: its socket and stream too.
        await this_one.edit_acked()
        again = await scene.open(here, "this-browser-again")
        await again.edit_acked()
        await this_one.close()
        await again.close()

    scenario(site, body)


def test_deactivating_the_user_in_the_admin(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "deactivated")
        admin = scene.admin()
        url = f"/admin/auth/user/{scene.editor_id}/change/"

        def deactivate():
            status, _, page = admin.request("GET", url)
            assert status == 200
            fields = [(k, v) for k, v in form_fields(page, "user_form") if k != "is_active"]
            admin.post(url, fields)

        await revoked(editor, deactivate, 4401)

    scenario(site, body)


def test_bulk_deleting_access_entries_in_the_admin(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "entries-bulk-deleted")
        admin = scene.admin()
        path = "/admin/editor/documentaccess/"
        ids = admin_ids(admin, path, scene.editor_name)
        assert ids == [str(scene.entry).encode()]
        action = {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
        await revoked(editor, lambda: admin.post(path, action), 4404)

    scenario(site, body)


def test_bulk_deleting_documents_in_the_admin(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "documents-bulk-deleted")
        admin = scene.admin()
        path = "/admin/editor/document/"
        ids = admin_ids(admin, path, scene.owner_name)
        assert ids == [str(scene.document).encode()]
        action = {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
        await revoked(editor, lambda: admin.post(path, action), 4404, document_kept=False)

    scenario(site, body)


def test_deleting_the_user_in_the_admin(site):
    async def body(scene):
        editor = await scene.open(scene.editor, "user-deleted")
        admin = scene.admin()
        url = f"/admin/auth/user/{scene.editor_id}/delete/"
        await revoked(editor, lambda: admin.post(url, {"post": "yes"}), 4401)

    scenario(site, body)


def test_a_password_set_by_an_admin_closes_every_browser_of_the_user(site):
    async def body(scene):
        first = await scene.open(scene.editor, "first-browser")
        second = await scene.open(
            Browser(scene.changes).log_in(scene.editor_name), "second-browser"
        )
        admin = scene.admin()
        url = f"/admin/auth/user/{scene.editor_id}/password/"

        def set_password():
            status, _, page = admin.request("GET", url)
            assert status == 200
            fields = dict(form_fields(page, "user_form"))
            fields.update(password1="pw-set-by-admin-3", password2="pw-set-by-admin-3")
            admin.post(url, fields)

        await revoked(first, set_password, 4401)
        assert await second.closed_with() == 4401
        await second.edits_refused(4401)

    scenario(site, body)
