"""The Content-Security-Policy header names the page's own WebSocket origin (editor/csp.py)."""

import pytest
from django.test import Client

from tests.e2e.test_csp_in_chromium import directives

pytestmark = pytest.mark.django_db


def policy(response):
    return directives(response["Content-Security-Policy"])


def test_a_page_over_http_may_open_its_socket_on_ws_of_its_own_host(client):
    found = policy(client.get("/accounts/login/", HTTP_HOST="localhost:8000"))
    assert found["connect-src"] == ["'self'", "ws://localhost:8000"]
    assert found["frame-ancestors"] == ["'none'"]


def test_a_page_over_https_may_open_its_socket_on_wss_only(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get("/accounts/login/", HTTP_HOST="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    assert policy(response)["connect-src"] == ["'self'", "wss://127.0.0.1"]


def test_a_request_for_a_host_not_allowed_gets_400_and_the_policy_without_a_socket():
    client = Client(raise_request_exception=False)
    response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert policy(response)["connect-src"] == ["'self'"]
