"""Changes made outside the edit stream reach open sockets: renames, locks, access, logout."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client as HttpClient
from django.urls import reverse

from collab import hub as hub_module
from collab import hubs, store
from collab import session as session_module
from collab.models import Snapshot
from editor.models import DocumentAccess
from tests.collab.conftest import Client
from tests.waits import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def as_user(user):
    http = HttpClient()
    http.force_login(user)
    return http


async def post(user, name, document, data=None, **kwargs):
    url = reverse(name, kwargs={"document_id": document.pk, **kwargs})
    http = await sync_to_async(as_user)(user)
    return await sync_to_async(http.post)(url, data or {})


async def test_rename_is_pushed_as_title(connect, document, owner, editor_user):
    bob = await connect(editor_user, document)
    await post(owner, "document_rename", document, {"title": "Plans 2027"})
    assert (await bob.receive_type("title"))["title"] == "Plans 2027"


async def test_lock_makes_everyone_read_only_and_unlock_restores(connect, document, owner,
                                                                 editor_user):  # fmt: skip
    bob = await connect(editor_user, document)
    await post(owner, "document_lock", document, {"locked": "1"})
    assert await bob.receive_type("lock") == {"type": "lock", "locked": True, "readonly": True}
    await bob.submit(0, [{"insert": "x"}])
    assert (await bob.receive_type("error"))["code"] == "read_only"
    await post(owner, "document_lock", document, {"locked": "0"})
    assert await bob.receive_type("lock") == {"type": "lock", "locked": False, "readonly": False}
    await bob.submit(0, [{"insert": "x"}])
    assert (await bob.receive_type("ack"))["version"] == 1


async def test_revoked_access_closes_the_socket(connect, document, owner, editor_user):
    bob = await connect(editor_user, document)
    await post(owner, "document_unshare", document, user_id=editor_user.pk)
    assert await bob.closed_with() == 4404


async def test_downgrade_to_viewer_makes_read_only(connect, document, owner, editor_user):
    bob = await connect(editor_user, document)
    await post(owner, "document_share", document, {"username": "eddie", "role": "viewer"})
    assert await bob.receive_type("lock") == {"type": "lock", "locked": False, "readonly": True}
    assert await sync_to_async(DocumentAccess.objects.get)(user=editor_user)


async def test_deleting_the_document_closes_sockets(connect, document, owner, editor_user):
    bob = await connect(editor_user, document)
    await post(owner, "document_delete", document)
    assert await bob.closed_with() == 4404


async def test_logout_closes_that_users_sockets(connect, document, owner, editor_user):
    bob = await connect(editor_user, document)
    alice = await connect(owner, document)
    await bob.receive_type("presence")
    http = await sync_to_async(as_user)(editor_user)
    await sync_to_async(http.post)(reverse("logout"))
    assert await bob.closed_with() == 4401
    left = await alice.receive_type("leave")
    assert left["session"] == bob.joined["you"]["session"]


async def test_last_leave_saves_a_snapshot(connect, document, owner):
    alice = await connect(owner, document)
    await alice.submit(0, [{"insert": "kept"}])
    await alice.receive_type("ack")
    await alice.close()
    latest = sync_to_async(Snapshot.objects.filter(document=document).order_by("-version").first)
    await until(latest, "a snapshot after the last leave")
    snapshot = await latest()
    assert snapshot.version == 1 and snapshot.reason == "idle"
    assert snapshot.content == [{"insert": "kept\n"}]


async def test_far_behind_reconnect_gets_the_whole_document(connect, document, owner,
                                                            monkeypatch):  # fmt: skip
    monkeypatch.setattr(hub_module, "CATCH_UP_MAX_OPS", 2)
    alice = await connect(owner, document)
    for n in range(4):
        await alice.submit(n, [{"insert": "a"}])
        await alice.receive_type("ack")
    late = await connect(owner, document, hello=False)
    joined = await late.hello(version=0)
    assert joined["version"] == 4 and joined["content"] == [{"insert": "aaaa\n"}]
    assert "ops" not in joined


async def test_silent_socket_is_closed_and_leaves_presence(connect, document, owner,
                                                           editor_user, settings):  # fmt: skip
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    settings.TANDEM_HEARTBEAT_TIMEOUT = 0
    await hubs.registry.hubs[document.pk].tick()  # what the ticker runs every few seconds
    assert await alice.closed_with() == 4408
    assert await bob.closed_with() == 4408


async def test_old_unknown_sequence_is_refused(connect, document, owner):
    alice = await connect(owner, document)
    await alice.submit(0, [{"insert": "a"}], seq=5)
    await alice.receive_type("ack")
    await alice.submit(1, [{"insert": "b"}], seq=3)
    error = await alice.receive_type("error")
    assert error["code"] == "bad_sequence" and error["seq"] == 3
    loaded = await sync_to_async(store.load)(document.pk)
    assert loaded.version == 1


async def test_lock_set_in_the_admin_reaches_open_sockets(connect, document, editor_user,
                                                          admin_user):  # fmt: skip
    bob = await connect(editor_user, document)
    url = reverse("admin:editor_document_change", args=[document.pk])
    http = await sync_to_async(as_user)(admin_user)
    form = {
        "title": "Plans",
        "owner": document.owner_id,
        "locked": "on",
        "access-TOTAL_FORMS": "1",
        "access-INITIAL_FORMS": "1",
        "access-0-id": str(await sync_to_async(lambda: document.access.get().pk)()),
        "access-0-document": str(document.pk),
        "access-0-user": str(editor_user.pk),
        "access-0-role": "editor",
    }
    response = await sync_to_async(http.post)(url, form)
    assert response.status_code == 302, response.content[:2000]
    assert await bob.receive_type("lock") == {"type": "lock", "locked": True, "readonly": True}


async def test_a_new_owner_closes_the_old_owners_sockets(connect, document, owner, stranger):
    alice = await connect(owner, document)
    document.owner = stranger
    await sync_to_async(document.save)()
    assert await alice.closed_with() == 4404


async def test_a_socket_that_has_not_said_hello_is_closed_too(open_socket, document,
                                                              editor_user):  # fmt: skip
    bob = await open_socket(editor_user, document.pk)
    await wait_until(lambda: any(s.open for s in hubs.registry.sessions))
    await sync_to_async(DocumentAccess.objects.filter(user=editor_user).delete)()
    assert await bob.closed_with() == 4404


@pytest.mark.parametrize("revocation", ["access entry deleted", "user deactivated"])
async def test_a_revocation_during_the_access_check_is_not_lost(
    engine, document, editor_user, monkeypatch, revocation
):
    """The check has read the access when the revocation lands, before the session is open:
    the session is refused all the same."""
    admit = session_module._admit

    def admit_then_revoke(*args):
        # In the engine's database thread, the one that reads the access: revoke it right
        # after, and wait until the engine has handled the revocation before answering.
        admitted = admit(*args)
        (starting,) = hubs.registry.sessions
        if revocation == "access entry deleted":
            DocumentAccess.objects.filter(user=editor_user).delete()
            handled = lambda: starting.recheck  # noqa: E731
        else:
            editor_user.is_active = False
            editor_user.save()
            handled = lambda: starting.revoked is not None  # noqa: E731
        deadline = time.monotonic() + 10
        while not handled() and time.monotonic() < deadline:
            time.sleep(0.01)
        monkeypatch.setattr(session_module, "_admit", admit)
        return admitted

    monkeypatch.setattr(session_module, "_admit", admit_then_revoke)
    bob = await Client(editor_user, document.pk).connect()
    assert await bob.closed_with() == (4404 if revocation == "access entry deleted" else 4401)


async def wait_until(condition):
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)
