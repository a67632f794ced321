"""Tell the open editors of a document that something outside the edit stream changed.

Views call this after their change is saved; the real-time engine turns it into messages
(title, lock) or closes sockets whose access is gone.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.dispatch import receiver

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
    """Broadcast `change` to every process holding the document open, once the commit is done."""
    _send_on_commit(
        document_group(document_id),
        {"type": "doc.changed", "document": document_id, "change": change},
    )


@receiver(user_logged_out)
def close_sockets_on_logout(sender, user, **kwargs):
    if user is not None:
        _send_on_commit(USERS_GROUP, {"type": "user.logout", "user": user.pk})
