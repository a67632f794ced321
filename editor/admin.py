from django.contrib import admin

from .models import Document, DocumentAccess
from .notify import document_changed


class DocumentAccessInline(admin.TabularInline):
    model = DocumentAccess
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "locked", "created_at", "updated_at"]
    list_filter = ["locked", "created_at", "updated_at", "owner"]
    search_fields = ["title", "owner__username"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["owner"]
    inlines = [DocumentAccessInline]

    # Open editors learn of renames and locks made here as they do of those made in the app.
    # Access entries, deleted documents and users (one at a time or in bulk) need nothing
    # here: editor.revocation sees them in the models.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        fields = {"title": obj.title, "locked": obj.locked}
        changed = {name: value for name, value in fields.items() if name in form.changed_data}
        if change and changed:
            document_changed(obj.pk, **changed)


@admin.register(DocumentAccess)
class DocumentAccessAdmin(admin.ModelAdmin):
    list_display = ["document", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["document__title", "user__username"]
    autocomplete_fields = ["document", "user"]
