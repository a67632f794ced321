"""Sockets and event streams open only from this site's origin: scheme, host and port."""

import asyncio

import pytest
import websockets

from collab.origin import same_origin
from tests.collab.livesite import Browser, connect_socket, open_socket
from tests.live_server import DaphneServer, sqlite_database


def scope(origin=None, host="docs.example.com", scheme=None, **headers):
    pairs = [("host", host)] if host else []
    pairs += [("origin", origin)] if origin else []
    pairs += [(name.replace("_", "-"), value) for name, value in headers.items()]
    built = {"type": "websocket", "headers": [(n.encode(), v.encode()) for n, v in pairs]}
    if scheme:
        built["scheme"] = scheme
    return built


@pytest.fixture
def site(settings):
    settings.ALLOWED_HOSTS = ["docs.example.com", "127.0.0.1"]
    settings.SECURE_PROXY_SSL_HEADER = None
    settings.CSRF_TRUSTED_ORIGINS = []
    return settings


def test_the_sites_own_origin_is_let_in(site):
    assert same_origin(scope("http://docs.example.com"), missing_ok=False)
    assert same_origin(scope("http://docs.example.com:80"), missing_ok=False)
    assert same_origin(scope("http://127.0.0.1:8001", host="127.0.0.1:8001"), missing_ok=False)
    assert same_origin(scope("https://docs.example.com", scheme="wss"), missing_ok=False)


def test_another_port_of_the_same_host_is_refused(site):
    assert not same_origin(scope("http://127.0.0.1:9999", host="127.0.0.1:8001"), False)
    assert not same_origin(scope("http://docs.example.com:8080"), missing_ok=False)


def test_another_scheme_of_the_same_host_is_refused(site):
    assert not same_origin(scope("https://docs.example.com"), missing_ok=False)
    assert not same_origin(scope("http://docs.example.com", scheme="wss"), missing_ok=False)
    assert not same_origin(scope("ftp://docs.example.com"), missing_ok=False)


def test_other_hosts_null_and_hosts_not_allowed_are_refused(site):
    assert not same_origin(scope("http://evil.example"), missing_ok=False)
    assert not same_origin(scope("null"), missing_ok=True)
    # DNS rebinding: the page and the Host agree, but the Host is not one of ours.
    assert not same_origin(scope("http://evil.example", host="evil.example"), False)
    assert not same_origin(scope("http://docs.example.com", host=None), missing_ok=False)


def test_a_missing_origin_is_the_callers_choice(site):
    assert not same_origin(scope(), missing_ok=False)
    assert same_origin(scope(), missing_ok=True)


def test_behind_a_tls_proxy_the_forwarded_scheme_counts(site):
    site.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = {"x_forwarded_proto": "https"}
    assert same_origin(scope("https://docs.example.com", **proxied), missing_ok=False)
    assert not same_origin(scope("http://docs.example.com", **proxied), missing_ok=False)
    plain = {"x_forwarded_proto": "http"}
    assert same_origin(scope("http://docs.example.com", **plain), missing_ok=False)
    assert not same_origin(scope("https://docs.example.com", **plain), missing_ok=False)


def test_csrf_trusted_origins_are_let_in_like_for_a_post(site):
    site.CSRF_TRUSTED_ORIGINS = ["https://docs.example.com", "https://*.example.org"]
    assert same_origin(scope("https://docs.example.com"), missing_ok=False)
    assert same_origin(scope("https://eu.example.org", host="eu.example.org"), False)
    assert not same_origin(scope("https://eu.example.org:8443", host="eu.example.org"), False)
    assert not same_origin(scope("http://eu.example.org", host="eu.example.org"), False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("origin")
    env = {"DATABASE_URL": sqlite_database(directory), "TANDEM_SIGNUP_RATE": "1000/h"}
    with DaphneServer(env=env, log_dir=directory) as live:
        yield live


def test_a_real_socket_joins_from_the_page_and_no_other_origin(server):
    person = Browser(server).sign_up("orla")
    document = person.create_document("Origins")
    elsewhere = [
        f"http://127.0.0.1:{server.port + 1}",  # another port of the same host
        f"https://127.0.0.1:{server.port}",  # another scheme
        f"http://localhost:{server.port}",  # another host name, allowed as a Host
    ]

    async def scenario():
        for origin in elsewhere:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await connect_socket(server, document, person.session, origin=origin)
            assert refused.value.response.status_code == 403, origin
        socket = await open_socket(server, document, person.session, "origin-client-1")
        assert socket.joined["role"] == "owner"
        await socket.close()

    asyncio.run(scenario())


def test_an_event_stream_from_another_port_or_scheme_is_refused(server):
    person = Browser(server).sign_up("otto")
    document = person.create_document("Streams")
    path = f"/documents/{document}/live/events/"
    for origin in (f"http://127.0.0.1:{server.port + 1}", f"https://127.0.0.1:{server.port}"):
        status, _, body = person.request("GET", path, headers={"Origin": origin})
        assert (status, body) == (403, b"cross-origin event streams are refused"), origin
