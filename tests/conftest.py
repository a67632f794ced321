"""Shared fixtures: users, documents, and the rule for tests that need PostgreSQL or Redis."""

import os
import socket
import uuid
from urllib.parse import urlparse

import pytest

from editor.models import Document, DocumentAccess, Role

PASSWORD = "correct-horse-battery"


def _reachable(url):
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=1):
            return True
    except OSError:
        return False


def require_service(env_name, default_url):
    """The URL of a service a test needs; skip where it is absent, fail under CI's rule.

    `.ci/run` sets TANDEM_REQUIRE_SERVICES=1 so that a missing service is a failure there.
    """
    url = os.environ.get(env_name, default_url)
    if _reachable(url):
        return url
    reason = f"{env_name}={url} is not reachable"
    if os.environ.get("TANDEM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and TANDEM_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def fresh_throttle_counts(settings):
    """Each test counts sign-ups and new documents from zero (editor/throttle.py).

    The limits stay on; a fresh key prefix starts new counts on whichever cache the settings
    chose (Redis under REDIS_URL) without flushing anything. A test that needs more room
    raises a rate with the `settings` fixture (`settings.TANDEM_SIGNUP_RATE = "100/h"`).
    Login lockouts need no reset: django-axes keeps them in the test's database.
    """
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["throttle"]["KEY_PREFIX"] = f"tandem-throttle-test-{uuid.uuid4().hex}"
    if caches["throttle"]["BACKEND"].endswith("LocMemCache"):
        caches["throttle"]["LOCATION"] = caches["throttle"]["KEY_PREFIX"]
    settings.CACHES = caches


@pytest.fixture
def postgres_url():
    return require_service("TANDEM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture
def redis_url():
    return require_service("TANDEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def make_user(django_user_model):
    def make(username):
        return django_user_model.objects.create_user(username=username, password=PASSWORD)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olivia")


@pytest.fixture
def document(owner):
    return Document.objects.create(title="Plans", owner=owner)


@pytest.fixture
def share(document):
    def give(user, role):
        DocumentAccess.objects.create(document=document, user=user, role=role)
        return user

    return give


@pytest.fixture
def editor_user(make_user, share):
    return share(make_user("eddie"), Role.EDITOR)


@pytest.fixture
def viewer_user(make_user, share):
    return share(make_user("vera"), Role.VIEWER)


@pytest.fixture
def stranger(make_user):
    return make_user("stan")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests last, after pytest-django's own ordering: Playwright's sync API keeps an
    event loop running in the main thread for the rest of the session, and an async test
    after it could not start its own."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
