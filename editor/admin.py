from django.contrib import admin

from .models import Document, DocumentAccess


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


@admin.register(DocumentAccess)
class DocumentAccessAdmin(admin.ModelAdmin):
    list_display = ["document", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["document__title", "user__username"]
    autocomplete_fields = ["document", "user"]
