"""Document pages: who may see, open, rename, delete and share."""

import pytest
from django.urls import reverse

from editor.models import Document, DocumentAccess, Role

pytestmark = pytest.mark.django_db


def url(name, document, **extra):
    return reverse(name, kwargs={"document_id": document.pk, **extra})


def test_anonymous_is_sent_to_login(client, document):
    for target in [reverse("document_list"), url("document_detail", document)]:
        response = client.get(target)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_signup_logs_in_and_lists_nothing(client):
    response = client.post(
        reverse("signup"),
        {
            "username": "newbie",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert response.context["user"].username == "newbie"
    assert b"You have no documents yet." in response.content


def test_create_rename_delete_by_owner(client, owner):
    client.force_login(owner)
    response = client.post(reverse("document_create"), {"title": "Minutes"})
    document = Document.objects.get(title="Minutes")
    assert document.owner == owner
    assert response.url == url("document_detail", document)

    client.post(url("document_rename", document), {"title": "Minutes (final)"})
    document.refresh_from_db()
    assert document.title == "Minutes (final)"

    confirm = client.get(url("document_delete", document))
    assert b"Delete for good" in confirm.content
    assert Document.objects.filter(pk=document.pk).exists(), "GET must only ask"
    client.post(url("document_delete", document))
    assert not Document.objects.filter(pk=document.pk).exists()


def test_blank_title_is_refused(client, owner):
    client.force_login(owner)
    response = client.post(reverse("document_create"), {"title": "   "})
    assert response.status_code == 200
    assert not Document.objects.exists()


@pytest.mark.parametrize("name", ["document_detail", "document_rename", "document_delete"])
def test_stranger_gets_404_like_a_missing_document(client, document, stranger, name):
    client.force_login(stranger)
    assert client.get(url(name, document)).status_code == 404
    missing = reverse(name, kwargs={"document_id": document.pk + 1000})
    assert client.get(missing).status_code == 404


def test_stranger_cannot_rename_or_delete_by_post(client, document, stranger):
    client.force_login(stranger)
    assert client.post(url("document_rename", document), {"title": "x"}).status_code == 404
    assert client.post(url("document_delete", document)).status_code == 404
    document.refresh_from_db()
    assert document.title == "Plans"


def test_stranger_does_not_see_it_in_lists(client, document, stranger):
    client.force_login(stranger)
    assert b"Plans" not in client.get(reverse("document_list")).content


def test_viewer_opens_but_cannot_rename_or_delete(client, document, viewer_user):
    client.force_login(viewer_user)
    page = client.get(url("document_detail", document))
    assert page.status_code == 200
    assert page.context["can_edit"] is False
    assert client.post(url("document_rename", document), {"title": "x"}).status_code == 403
    assert client.post(url("document_delete", document)).status_code == 403
    document.refresh_from_db()
    assert document.title == "Plans"


def test_editor_renames_but_cannot_delete(client, document, editor_user):
    client.force_login(editor_user)
    client.post(url("document_rename", document), {"title": "Plans v2"})
    document.refresh_from_db()
    assert document.title == "Plans v2"
    assert client.post(url("document_delete", document)).status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()


def test_editor_cannot_share(client, document, editor_user, stranger):
    client.force_login(editor_user)
    response = client.post(
        url("document_share", document), {"username": stranger.username, "role": "editor"}
    )
    assert response.status_code == 403
    assert not DocumentAccess.objects.filter(user=stranger).exists()


def test_owner_shares_and_unshares(client, document, owner, stranger):
    client.force_login(owner)
    client.post(url("document_share", document), {"username": stranger.username, "role": "viewer"})
    assert DocumentAccess.objects.get(user=stranger).role == Role.VIEWER
    client.force_login(stranger)
    assert client.get(url("document_detail", document)).status_code == 200
    listing = client.get(reverse("document_list"))
    assert [d.pk for d in listing.context["shared"]] == [document.pk]

    client.force_login(owner)
    client.post(url("document_unshare", document, user_id=stranger.pk))
    client.force_login(stranger)
    assert client.get(url("document_detail", document)).status_code == 404


def test_list_search_and_pagination(client, owner):
    client.force_login(owner)
    for n in range(25):
        Document.objects.create(title=f"Report {n:02d}", owner=owner)
    Document.objects.create(title="Budget", owner=owner)

    first = client.get(reverse("document_list"))
    page = first.context["owned"]
    assert page.paginator.count == 26 and len(page.object_list) == 20
    assert page.object_list[0].title == "Budget", "newest first"

    found = client.get(reverse("document_list"), {"q": "budg"}).context["owned"]
    assert [d.title for d in found] == ["Budget"]

    second = client.get(reverse("document_list"), {"page": 2}).context["owned"]
    assert len(second.object_list) == 6


def test_owner_locks_document(client, document, owner, editor_user):
    client.force_login(owner)
    client.post(url("document_lock", document), {"locked": "1"})
    document.refresh_from_db()
    assert document.locked
    client.force_login(editor_user)
    assert client.get(url("document_detail", document)).context["can_edit"] is False


def test_admin_lists_documents_with_access_entries(admin_client, document, editor_user):
    listing = admin_client.get(reverse("admin:editor_document_changelist"))
    assert b"Plans" in listing.content
    change = admin_client.get(reverse("admin:editor_document_change", args=[document.pk]))
    assert change.status_code == 200
    assert b"eddie" in change.content
    entries = admin_client.get(reverse("admin:editor_documentaccess_changelist"))
    assert b"eddie" in entries.content


def test_demo_command_creates_user_and_document(client):
    from django.core.management import call_command

    call_command("demo")
    call_command("demo")  # idempotent
    # The login form, as a person uses it (django-axes refuses a login without a request).
    response = client.post(reverse("login"), {"username": "demo", "password": "tandem-demo"})
    assert response.status_code == 302
    page = client.get(reverse("document_list"))
    assert [d.title for d in page.context["owned"]] == ["Welcome to Tandem"]
