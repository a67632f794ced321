"""Tell the real-time engine that something outside the edit stream changed.

Messages go over the channel layer once the transaction commits: renames and locks to the
processes holding the document open, access changes and sign-outs to every process
(USERS_GROUP), since a session that has not said hello yet holds no hub to be found by.
Access is never told from views: editor.revocation sends it from the models' signals.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

# Every engine process is in this group (collab.bridge).
USERS_GROUP = "tandem.users"


def document_group(document_id):
    return f"doc.{document_id}"


def _send_on_commit(group, message):
    def send():
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, message)

    transaction.on_commit(send)


def document_changed(document_id, **change):
    """Broadcast a rename or lock (`title=`, `locked=`) to the document's open editors."""
    _send_on_commit(
        document_group(document_id),
        {"type": "doc.changed", "document": document_id, "change": change},
    )


def access_changed(document_id, gone=False):
    """Who may use the document changed (or, `gone`, it was deleted): every process reads
    the roles of its sessions on it afresh and closes those left without one (4404)."""
    _send_on_commit(USERS_GROUP, {"type": "access.document", "document": document_id, "gone": gone})


def user_signed_out(user_id, keep=None):
    """The user's sessions are no longer signed in (4401), except those of the browser
    session whose login marker is `keep` (editor.revocation.LOGIN_KEY)."""
    _send_on_commit(USERS_GROUP, {"type": "access.user", "user": user_id, "keep": keep})
