"""Every way of losing access ends the user's open sessions, driven from the models.

Views, the admin (its bulk actions too), the shell and cascades all change access through the
ORM, so the signals here are the one place that notices: an access entry saved or deleted, a
document deleted or given to another owner, a user deactivated, deleted or given a new
password, a logout. Each sends one message over the channel layer once the transaction
commits (editor.notify); every engine process then closes the sessions it holds, sockets and
event streams alike (collab.hubs). Bulk `QuerySet.update()` sends no signals and so is not
seen: change users and access entries through `save()` or `delete()`.

A new password signs out the user's other browser sessions, as Django does (the session auth
hash no longer matches). The browser session that changed it stays signed in under a new key,
so its sessions are recognised by a marker kept in the session's data (LOGIN_KEY), which
`cycle_key()` carries over; the request that saves the password is known from
`acting_request_middleware`.
"""

import secrets
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django.utils.crypto import constant_time_compare
from django.utils.decorators import sync_and_async_middleware

from . import notify
from .models import Document, DocumentAccess

# A random marker of one login, in the session's data; the engine keeps it per session.
LOGIN_KEY = "tandem_login"

_acting_request = ContextVar("tandem_acting_request", default=None)


@sync_and_async_middleware
def acting_request_middleware(get_response):
    """Remember the request being handled, so that a password change knows whose it is."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            token = _acting_request.set(request)
            try:
                return await get_response(request)
            finally:
                _acting_request.reset(token)

    else:

        def middleware(request):
            token = _acting_request.set(request)
            try:
                return get_response(request)
            finally:
                _acting_request.reset(token)

    return middleware


def still_signed_in(user_id, session):
    """Whether a session read earlier still signs in its user, checked afresh in the database:
    the account exists and is active and (given the `session`) its password is the one the
    session was signed in with, Django's session auth hash (fallback secrets included)."""
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return False
    if session is None:
        return True
    stored = session.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored, known) for known in hashes)


@receiver(user_logged_in)
def _mark_login(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[LOGIN_KEY] = secrets.token_urlsafe(16)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        notify.user_signed_out(user.pk)


# -- access entries and documents ------------------------------------------------------


@receiver(post_save, sender=DocumentAccess)
@receiver(post_delete, sender=DocumentAccess)
def _entry_changed(sender, instance, **kwargs):
    # A new entry, a role changed either way, or one gone: the engine reads the roles.
    notify.access_changed(instance.document_id)


@receiver(pre_save, sender=Document)
def _remember_owner(sender, instance, update_fields=None, **kwargs):
    instance._tandem_saved_owner = None
    if instance.pk is not None and (update_fields is None or "owner" in update_fields):
        saved = Document.objects.filter(pk=instance.pk).values_list("owner_id", flat=True)
        instance._tandem_saved_owner = saved.first()


@receiver(post_save, sender=Document)
def _owner_changed(sender, instance, created, **kwargs):
    saved = getattr(instance, "_tandem_saved_owner", None)
    if not created and saved is not None and saved != instance.owner_id:
        notify.access_changed(instance.pk)


@receiver(post_delete, sender=Document)
def _document_deleted(sender, instance, **kwargs):
    notify.access_changed(instance.pk, gone=True)


# -- users ---------------------------------------------------------------------------


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def _remember_credentials(sender, instance, update_fields=None, **kwargs):
    instance._tandem_saved = None
    if instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # a login saves last_login alone
    saved = sender._default_manager.filter(pk=instance.pk).values("password", "is_active")
    instance._tandem_saved = saved.first()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _credentials_changed(sender, instance, **kwargs):
    saved = getattr(instance, "_tandem_saved", None)
    if saved is None:
        return
    if saved["is_active"] and not instance.is_active:
        notify.user_signed_out(instance.pk)
    elif saved["password"] != instance.password:
        notify.user_signed_out(instance.pk, keep=_login_of_acting_request(instance))


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL)
def _user_deleted(sender, instance, **kwargs):
    # Before the cascade: its documents' and entries' messages then come after this one, so
    # the user's sessions are told 4401 (signed out) rather than 4404.
    notify.user_signed_out(instance.pk)


def _login_of_acting_request(user):
    """The login marker of the request's session when the user changes their own password
    (that session stays signed in); None when someone else (an admin) changes it."""
    request = _acting_request.get()
    if request is None or not hasattr(request, "session"):
        return None
    if getattr(request, "user", None) is None or request.user.pk != user.pk:
        return None
    return request.session.get(LOGIN_KEY)
