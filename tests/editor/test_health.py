"""`GET /healthz` answers 200 when the database and channel layer work, 503 naming what failed."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import AsyncClient

from editor import health
from tests.live_server import DaphneServer
from tests.stall_proxy import StallProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def close_health_connection():
    """The check keeps its own connection open; the test database is dropped after the run."""
    yield
    health.close_connection()


async def get_health(**headers):
    response = await AsyncClient().get("/healthz", **headers)
    return response, json.loads(response.content)


@pytest.mark.django_db(transaction=True)
async def test_healthy_without_login_session_or_csrf():
    response, body = await get_health()
    assert response.status_code == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}
    assert "no-cache" in response["Cache-Control"]
    assert "Set-Cookie" not in response


@pytest.mark.django_db(transaction=True)
async def test_a_failing_database_is_a_503_naming_it(monkeypatch):
    async def broken():
        raise OSError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response, body = await get_health()
    assert response.status_code == 503
    assert body == {"status": "fail", "checks": {"database": "error", "channel_layer": "ok"}}


@pytest.mark.django_db(transaction=True)
async def test_a_hung_channel_layer_is_a_503_within_the_deadline(monkeypatch):
    async def hung():
        await asyncio.sleep(60)

    monkeypatch.setitem(health.CHECKS, "channel_layer", hung)
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.2)
    async with asyncio.timeout(5):
        response, body = await get_health()
    assert response.status_code == 503
    assert body["checks"] == {"database": "ok", "channel_layer": "timeout"}


@pytest.mark.django_db(transaction=True)
async def test_the_layer_check_really_round_trips(monkeypatch):
    class SwallowingLayer:
        """Accepts messages and never delivers them."""

        async def new_channel(self, prefix="specific."):
            return prefix + "x"

        async def send(self, channel, message):
            pass

        async def receive(self, channel):
            await asyncio.sleep(60)

    monkeypatch.setattr(health, "get_channel_layer", SwallowingLayer)
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.2)
    response, body = await get_health()
    assert response.status_code == 503
    assert body["checks"]["channel_layer"] == "timeout"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ends a PostgreSQL backend")
@pytest.mark.django_db(transaction=True)
async def test_a_database_restart_since_the_last_probe_is_no_failure():
    assert (await get_health())[0].status_code == 200
    backend = health._database.wrapper.connection.info.backend_pid

    def terminate():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        connection.close()  # this thread's, so the test database can be dropped after

    await sync_to_async(terminate)()
    response, body = await get_health()
    assert response.status_code == 200, body
    assert health._database.wrapper.connection.info.backend_pid != backend


@pytest.mark.django_db(transaction=True)
async def test_only_safe_methods():
    response = await AsyncClient().post("/healthz")
    assert response.status_code == 405


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_healthy_through_redis(redis_url, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url.rsplit("/", 1)[0] + "/7"]},
        }
    }
    response, body = await get_health()
    assert response.status_code == 200, body
    assert body["checks"]["channel_layer"] == "ok"


def test_production_does_not_redirect_the_probe_to_https(tmp_path):
    code = """
from django.test import Client
client = Client(SERVER_NAME="docs.example.com")
print(client.get("/healthz").status_code, client.get("/accounts/login/").status_code)
"""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "SECURE_SSL_REDIRECT"}}
    env.update(
        TANDEM_PRODUCTION="1",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="docs.example.com",
        DATABASE_URL="sqlite://:memory:",
        TANDEM_LOG_FORMAT="plain",
        STATIC_ROOT=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "301"]


def probe(server):
    """GET /healthz from a daphne process: (status, checks, seconds it took)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body)["checks"], time.monotonic() - started


@pytest.fixture
def behind_proxies(postgres_url, redis_url, tmp_path):
    """A daphne process whose PostgreSQL and Redis are each reached through a StallProxy."""
    pg, rd = urlparse(postgres_url), urlparse(redis_url)
    with StallProxy(pg.port, pg.hostname) as database, StallProxy(rd.port, rd.hostname) as redis:
        env = {
            "DATABASE_URL": pg._replace(
                netloc=f"{pg.netloc.split('@')[0]}@127.0.0.1:{database.port}"
            ).geturl(),
            "REDIS_URL": rd._replace(netloc=f"127.0.0.1:{redis.port}").geturl(),
        }
        server = DaphneServer(env=env, log_dir=tmp_path).start()
        try:
            yield server, {"database": database, "channel_layer": redis}
        finally:
            server.kill()


@pytest.mark.services
@pytest.mark.parametrize("stalled", ["database", "channel_layer"])
def test_a_stalled_dependency_is_a_503_within_two_seconds_and_ok_again_after(
    behind_proxies, stalled
):
    server, proxies = behind_proxies
    assert probe(server)[:2] == (200, {"database": "ok", "channel_layer": "ok"})
    proxies[stalled].stall()
    for _ in range(3):  # the first finds the check stuck; the later ones find it ended
        status, checks, took = probe(server)
        assert status == 503
        assert checks[stalled] in {"timeout", "error"}
        assert took < 2.0, f"answered in {took:.2f} s"
    proxies[stalled].resume()
    deadline = time.monotonic() + 20
    while probe(server)[0] != 200:  # the stalled check's failure shows before recovery
        assert time.monotonic() < deadline, "healthy again once the dependency answers"
