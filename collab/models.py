"""The operation log and snapshots: the durable record of every document's content."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from editor.models import Document


class Operation(models.Model):
    """One committed edit. Version v turns version v-1 of the document into version v."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="operations")
    version = models.PositiveIntegerField()
    delta = models.JSONField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    client_id = models.CharField(max_length=64)
    seq = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Two processes racing for the same version: exactly one insert wins.
            models.UniqueConstraint(fields=["document", "version"], name="one_op_per_version"),
            # A resent edit can never be stored twice.
            models.UniqueConstraint(
                fields=["document", "client_id", "seq"], name="one_op_per_client_seq"
            ),
        ]

    def __str__(self):
        return f"{self.document_id}@{self.version}"


class Snapshot(models.Model):
    """The whole content of a document at a version, so loading need not replay the log."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField()
    content = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reason = models.CharField(max_length=32, default="auto")

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["document", "version"], name="one_snapshot_per_version")
        ]

    def __str__(self):
        return f"{self.document_id}@{self.version} ({self.reason})"
