"""The one place that decides who may do what with a document.

Every document id that arrives from a URL or a socket goes through `access_document`.
A document the user may not see answers exactly like a missing one, so ids cannot be probed.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import ROLE_RANK, Document, DocumentAccess, Role


class NoAccess(Http404):
    """Raised for missing and forbidden documents alike."""

    def __init__(self):
        super().__init__("No such document.")


def role_of(user, document):
    """The user's role on the document, or None (always for a deactivated account)."""
    if not user.is_authenticated or not user.is_active:
        return None
    if document.owner_id == user.pk:
        return Role.OWNER
    entry = DocumentAccess.objects.filter(document=document, user=user).only("role").first()
    return Role(entry.role) if entry else None


def access_document(user, document_id, need=Role.VIEWER):
    """Return (document, role) if `user` holds at least role `need` on it.

    Raises NoAccess (404) when the user has no role at all, and PermissionDenied (403) when
    they may see the document but not do this with it.
    """
    try:
        document = Document.objects.select_related("owner").get(pk=int(document_id))
    except (Document.DoesNotExist, TypeError, ValueError):
        raise NoAccess() from None
    role = role_of(user, document)
    if role is None:
        raise NoAccess()
    if ROLE_RANK[role] < ROLE_RANK[Role(need)]:
        raise PermissionDenied("Your role on this document does not allow this.")
    return document, role


def can_edit(role, document):
    return ROLE_RANK[role] >= ROLE_RANK[Role.EDITOR] and not document.locked


def visible_documents(user):
    """Documents the user owns or has been given access to."""
    return Document.objects.filter(owner=user) | Document.objects.filter(access__user=user)
