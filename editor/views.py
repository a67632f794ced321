"""Pages for managing documents. Every document lookup goes through editor.access.

Changes of access need no word to the engine here: editor.revocation sees them in the models.
"""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import access
from .forms import DocumentTitleForm, ShareForm, SignUpForm
from .models import Document, DocumentAccess, Role
from .notify import document_changed
from .throttle import rate_limited

PAGE_SIZE = 20


@require_http_methods(["GET", "POST"])
@rate_limited(
    "signup", key="ip", rate_setting="TANDEM_SIGNUP_RATE", what="sign-ups from your address"
)
def signup(request):
    if request.user.is_authenticated:
        return redirect("document_list")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # The password was just set: no backend authenticated it, so name the one that keeps
        # the session (django-axes's comes first in AUTHENTICATION_BACKENDS and keeps none).
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to Tandem, {user.username}.")
        return redirect("document_list")
    return render(request, "registration/signup.html", {"form": form})


def _page(request, queryset):
    query = request.GET.get("q", "").strip()
    if query:
        queryset = queryset.filter(title__icontains=query)
    paginator = Paginator(queryset.order_by("-updated_at", "-id"), PAGE_SIZE)
    return query, paginator.get_page(request.GET.get("page"))


@login_required
def document_list(request):
    user = request.user
    query, owned = _page(request, Document.objects.filter(owner=user))
    _, shared = _page(
        request, Document.objects.filter(access__user=user).select_related("owner").distinct()
    )
    return render(
        request,
        "editor/document_list.html",
        {"owned": owned, "shared": shared, "query": query},
    )


@login_required
@require_http_methods(["GET", "POST"])
@rate_limited(
    "document_create",
    key="user",
    rate_setting="TANDEM_DOCUMENT_CREATE_RATE",
    what="new documents from your account",
)
def document_create(request):
    form = DocumentTitleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        document = form.save(commit=False)
        document.owner = request.user
        document.save()
        return redirect("document_detail", document_id=document.pk)
    return render(request, "editor/document_form.html", {"form": form, "creating": True})


@login_required
def document_detail(request, document_id):
    document, role = access.access_document(request.user, document_id)
    entries = document.access.select_related("user").order_by("user__username")
    return render(
        request,
        "editor/document_detail.html",
        {
            "document": document,
            "role": role,
            "can_edit": access.can_edit(role, document),
            "is_owner": role == Role.OWNER,
            "entries": entries,
            "share_form": ShareForm(document=document),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def document_rename(request, document_id):
    document, _ = access.access_document(request.user, document_id, need=Role.EDITOR)
    form = DocumentTitleForm(request.POST or None, instance=document)
    if request.method == "POST" and form.is_valid():
        form.save()
        document_changed(document.pk, title=document.title)
        return redirect("document_detail", document_id=document.pk)
    return render(request, "editor/document_form.html", {"form": form, "document": document})


@login_required
@require_http_methods(["GET", "POST"])
def document_delete(request, document_id):
    document, _ = access.access_document(request.user, document_id, need=Role.OWNER)
    if request.method == "POST":
        title = document.title
        document.delete()  # its open sessions are closed by editor.revocation
        messages.success(request, f"Deleted “{title}”.")
        return redirect("document_list")
    return render(request, "editor/document_confirm_delete.html", {"document": document})


@login_required
@require_POST
def document_share(request, document_id):
    document, _ = access.access_document(request.user, document_id, need=Role.OWNER)
    form = ShareForm(request.POST, document=document)
    if form.is_valid():
        DocumentAccess.objects.update_or_create(
            document=document,
            user=form.cleaned_data["user"],
            defaults={"role": form.cleaned_data["role"]},
        )
        messages.success(request, f"Shared with {form.cleaned_data['username']}.")
    else:
        for error in form.errors.get("username", []):
            messages.error(request, error)
    return redirect("document_detail", document_id=document.pk)


@login_required
@require_POST
def document_unshare(request, document_id, user_id):
    document, _ = access.access_document(request.user, document_id, need=Role.OWNER)
    DocumentAccess.objects.filter(document=document, user_id=user_id).delete()
    return redirect("document_detail", document_id=document.pk)


@login_required
@require_POST
def document_lock(request, document_id):
    document, _ = access.access_document(request.user, document_id, need=Role.OWNER)
    document.locked = request.POST.get("locked") == "1"
    document.save(update_fields=["locked", "updated_at"])
    document_changed(document.pk, locked=document.locked)
    return redirect("document_detail", document_id=document.pk)
