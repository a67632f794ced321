"""Abuse limits: the login lockout (django-axes) and the sign-up and new-document rates."""

import http.client
import logging
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from editor.models import Document
from tests.conftest import PASSWORD
from tests.live_server import DaphneServer, create_users, manage

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
OTHER_ADDRESS = "203.0.113.7"


@pytest.fixture(autouse=True)
def quick_passwords(settings):
    """A fast hasher: these tests check hundreds of passwords, what they test is the counting."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def log_in(client, url, username, password, address="127.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in_as(client):
    return client.session.get("_auth_user_id")


def guess(client, url, username, times, address="127.0.0.1"):
    for _ in range(times):
        log_in(client, url, username, "wrong-password", address)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", password=PASSWORD, is_staff=True)


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_forty_wrong_passwords_then_the_right_one_is_refused(client, owner, staff, page):
    user = staff if page == "admin:login" else owner
    guess(client, reverse(page), user.username, 40)
    response = log_in(client, reverse(page), user.username, PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert int(response["Retry-After"]) == 15 * 60
    assert logged_in_as(client) is None


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_the_lockout_holds_one_account_from_one_address_only(
    client, staff, make_user, django_user_model, page
):
    other = django_user_model.objects.create_user("sue", password=PASSWORD, is_staff=True)
    guess(client, reverse(page), staff.username, 40)
    assert log_in(client, reverse(page), staff.username, PASSWORD).status_code == 429

    elsewhere = Client()
    response = log_in(elsewhere, reverse(page), staff.username, PASSWORD, OTHER_ADDRESS)
    assert response.status_code == 302, "the owner elsewhere is not locked out by a guesser"
    assert logged_in_as(elsewhere) == str(staff.pk)

    same_address = Client()
    response = log_in(same_address, reverse(page), other.username, PASSWORD)
    assert response.status_code == 302, "another account from the same address is not locked"
    assert logged_in_as(same_address) == str(other.pk)


def test_the_lockout_starts_at_the_limit(client, owner):
    guess(client, reverse("login"), owner.username, 4)
    response = log_in(client, reverse("login"), owner.username, "wrong-password")
    assert response.status_code == 429, "the fifth failure locks"
    assert b"Too many failed logins" in response.content


def test_a_login_resets_the_failures(client, owner):
    for _ in range(3):
        guess(client, reverse("login"), owner.username, 4)
        assert log_in(client, reverse("login"), owner.username, PASSWORD).status_code == 302
        assert logged_in_as(client) == str(owner.pk)
        client.logout()
    assert not AccessAttempt.objects.exists()
    guess(client, reverse("login"), owner.username, 4)
    response = log_in(client, reverse("login"), owner.username, "wrong-password")
    assert response.status_code == 429, "the limit still holds: five failures in a row lock"


def test_the_lockout_ends_after_the_cool_off(client, owner):
    guess(client, reverse("login"), owner.username, 40)
    assert log_in(client, reverse("login"), owner.username, PASSWORD).status_code == 429
    # The cool-off (15 minutes) passes: the failures are dated that long ago.
    attempt = AccessAttempt.objects.get()
    attempt.attempt_time -= timedelta(minutes=15, seconds=1)
    attempt.save()
    assert log_in(client, reverse("login"), owner.username, PASSWORD).status_code == 302
    assert logged_in_as(client) == str(owner.pk)


def test_the_failure_limit_and_cool_off_come_from_settings(client, owner, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=3)
    guess(client, reverse("login"), owner.username, 1)
    response = log_in(client, reverse("login"), owner.username, "wrong-password")
    assert response.status_code == 429
    assert response["Retry-After"] == "180"
    assert b"3 minutes" in response.content


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_one_address_trying_many_usernames_is_refused_past_the_rate(client, staff, page):
    for number in range(60):  # the default, TANDEM_LOGIN_RATE=60/10m
        response = log_in(client, reverse(page), f"someone{number}", "Password1")
        assert response.status_code == 200, "each username fails below its own lockout"
    response = log_in(client, reverse(page), staff.username, PASSWORD)
    assert response.status_code == 429
    assert b"logins from your address" in response.content
    assert logged_in_as(client) is None

    elsewhere = Client()
    response = log_in(elsewhere, reverse(page), staff.username, PASSWORD, OTHER_ADDRESS)
    assert response.status_code == 302, "other addresses log in"


def sign_up(address="127.0.0.1", name=None):
    name = name or f"new-{uuid.uuid4().hex[:8]}"
    response = Client().post(
        reverse("signup"),
        {"username": name, "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"},
        REMOTE_ADDR=address,
    )
    return name, response


def test_sign_ups_past_the_rate_are_refused_and_create_nobody(django_user_model):
    for _ in range(10):  # the default, TANDEM_SIGNUP_RATE=10/h
        _, response = sign_up()
        assert response.status_code == 302
    name, response = sign_up()
    assert response.status_code == 429
    assert b"Too many requests" in response.content
    assert b"sign-ups from your address" in response.content
    assert 0 < int(response["Retry-After"]) <= 3600
    assert not django_user_model.objects.filter(username=name).exists()
    assert django_user_model.objects.count() == 10
    assert Client().get(reverse("signup")).status_code == 200, "the form still shows"

    name, response = sign_up(OTHER_ADDRESS)
    assert response.status_code == 302, "another address still signs up"
    assert django_user_model.objects.filter(username=name).exists()


def create(client, title):
    return client.post(reverse("document_create"), {"title": title})


def test_new_documents_past_the_rate_are_refused_and_create_nothing(client, owner, make_user):
    client.force_login(owner)
    for number in range(60):  # the default, TANDEM_DOCUMENT_CREATE_RATE=60/h
        response = create(client, f"Draft {number}")
        assert response.status_code == 302
    response = create(client, "One too many")
    assert response.status_code == 429
    assert b"new documents from your account" in response.content
    assert not Document.objects.filter(title="One too many").exists()
    assert Document.objects.filter(owner=owner).count() == 60
    assert client.get(reverse("document_create")).status_code == 200, "the form still shows"

    other = Client()
    other.force_login(make_user("nina"))
    assert create(other, "Mine").status_code == 302, "another user still creates"
    assert Document.objects.filter(title="Mine").exists()


def test_the_rates_come_from_settings(client, owner, settings):
    settings.TANDEM_DOCUMENT_CREATE_RATE = "2/m"
    settings.TANDEM_SIGNUP_RATE = "1/m"
    settings.TANDEM_LOGIN_RATE = "3/m"
    client.force_login(owner)
    assert [create(client, f"D{n}").status_code for n in range(3)] == [302, 302, 429]
    assert [sign_up()[1].status_code for _ in range(2)] == [302, 429]
    statuses = [
        log_in(Client(), reverse("login"), owner.username, PASSWORD).status_code for _ in range(4)
    ]
    assert statuses == [302, 302, 302, 429]


def test_without_the_cache_the_rates_let_requests_through(settings, caplog):
    """Redis down: sign-ups go on (the limit is a brake, not a dependency), with a warning."""
    closed = DaphneServer().port  # a free port nobody listens on
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed}/0",
        },
    }
    with caplog.at_level(logging.WARNING, logger="tandem.throttle"):
        name, response = sign_up()
    assert response.status_code == 302
    assert get_user_model().objects.filter(username=name).exists()
    assert "rate limit not counted" in caplog.text


@pytest.mark.parametrize(
    "name", ["TANDEM_LOGIN_RATE", "TANDEM_SIGNUP_RATE", "TANDEM_DOCUMENT_CREATE_RATE"]
)
def test_a_malformed_rate_stops_the_start(name):
    env = {**os.environ, name: "ten per hour"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert name in result.stderr


# Two processes: the counts are shared (login failures in the database, rates in Redis).


@pytest.fixture
def two_processes(postgres_url, redis_url, tmp_path):
    name = f"tandem_thr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {
        "DATABASE_URL": postgres_url.rsplit("/", 1)[0] + f"/{name}",
        "REDIS_URL": redis_url,
        "TANDEM_SIGNUP_RATE": "4/h",
    }
    servers = []
    try:
        manage("migrate", "--noinput", env=env)
        create_users({"ann": PASSWORD}, env=env)
        for _ in range(2):
            # --proxy-headers: each test run comes from an address of its own (X-Forwarded-For),
            # so the counts an earlier run left in Redis do not touch this one.
            servers.append(DaphneServer(env=env, log_dir=tmp_path, args=["--proxy-headers"]))
            servers[-1].start()
        yield servers
    finally:
        for server in servers:
            server.kill()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Browser:
    """Form posts to a live server from one client address, with a CSRF cookie."""

    def __init__(self, address):
        self.address = address

    def request(self, server, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request(
                method,
                path,
                body=body,
                headers={"X-Forwarded-For": self.address, **(headers or {})},
            )
            reply = connection.getresponse()
            return reply.status, reply.headers.get_all("Set-Cookie") or [], reply.read()
        finally:
            connection.close()

    def post_form(self, server, path, fields):
        status, set_cookies, _ = self.request(server, "GET", path)
        assert status == 200
        jar = SimpleCookie()
        for header in set_cookies:
            jar.load(header)
        token = jar["csrftoken"].value
        body = urlencode({**fields, "csrfmiddlewaretoken": token})
        status, _, content = self.request(server, "POST", path, body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={token}",
            "Origin": server.url,
        })  # fmt: skip
        return status, content


@pytest.mark.services
def test_processes_share_the_counts(two_processes):
    a, b = two_processes
    browser = Browser(f"198.51.100.{uuid.uuid4().int % 250 + 1}")
    sign_ups = []
    for number, server in enumerate([a, b, a, b, a, b]):
        fields = {"username": f"user{number}", "password1": "a-long-pass-phrase"}
        fields["password2"] = fields["password1"]
        sign_ups.append(browser.post_form(server, "/accounts/signup/", fields)[0])
    assert sign_ups == [302, 302, 302, 302, 429, 429], "TANDEM_SIGNUP_RATE=4/h across both"

    wrong = {"username": "ann", "password": "wrong-password"}
    failures = [
        browser.post_form(server, "/accounts/login/", wrong)[0] for server in [a, b, a, b, a]
    ]
    assert failures == [200, 200, 200, 200, 429], "the fifth, over both processes, locks"
    right = {"username": "ann", "password": PASSWORD}
    status, content = browser.post_form(b, "/accounts/login/", right)
    assert status == 429
    assert b"Too many failed logins" in content
