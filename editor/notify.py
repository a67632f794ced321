"""Tell the open editors of a document that something outside the edit stream changed.

Views call this after their change is saved; the real-time engine turns it into messages
(title, lock) or closes sockets whose access is gone.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def document_group(document_id):
    return f"doc.{document_id}"


def document_changed(document_id, **change):
    """Broadcast `change` to every process holding the document open, once the commit is done."""
    group = document_group(document_id)

    def send():
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, {"type": "doc.changed", "change": change})

    transaction.on_commit(send)
