"""Documents and who may use them."""

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    OWNER = "owner", "Owner"


# Higher ranks include every right of the lower ones.
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


class Document(models.Model):
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_documents"
    )
    locked = models.BooleanField(
        default=False, help_text="A locked document is read-only for everyone, owner included."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self):
        return self.title


class DocumentAccess(models.Model):
    """A user's role on a document other than its owner's (the owner needs no entry)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="access")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="document_access"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "access entry"
        verbose_name_plural = "access entries"
        constraints = [
            models.UniqueConstraint(fields=["document", "user"], name="one_access_per_user")
        ]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.document}"
