"""The shipped deployment, for real: nginx with deploy/nginx/tandem.conf in front of two daphne
processes started with deploy/systemd/tandem@.service's options, on PostgreSQL and Redis, in
production mode (without TLS), static files collected.
"""

import asyncio
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
import uuid
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
import websockets

from tests.live_server import ROOT, DaphneServer, create_documents, create_users, free_port, manage

pytestmark = pytest.mark.services

TEMPLATE = ROOT / "deploy" / "nginx" / "tandem.conf"
UNIT = ROOT / "deploy" / "systemd" / "tandem@.service"
PASSWORD = "pw-nina-123456"


def nginx_binary():
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if found:
        return found
    reason = "nginx is not installed (apt-get install nginx)"
    if os.environ.get("TANDEM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and TANDEM_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(reason)


def unit_daphne_options():
    """The daphne options of the unit's ExecStart, without the address and application."""
    text = UNIT.read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    words = shlex.split(line.removeprefix("ExecStart="))
    assert words[0].endswith("/daphne") and words[-1] == "editor.asgi:application"
    options, rest = [], iter(words[1:-1])
    for word in rest:
        if word in ("-b", "-p"):
            assert next(rest) in ("127.0.0.1", "%i"), "daphne must listen on 127.0.0.1 only"
        else:
            options.append(word)
    return options


def render_template(values):
    """deploy/nginx/tandem.conf with its ${TANDEM_*} placeholders filled, as envsubst does."""
    text = TEMPLATE.read_text()
    used = set(re.findall(r"\$\{(TANDEM_[A-Z_]+)\}", text))
    assert used == set(values), f"the template's placeholders are {sorted(used)}"
    return re.sub(r"\$\{(TANDEM_[A-Z_]+)\}", lambda match: values[match.group(1)], text)


def nginx_main_conf(directory, site):
    """A minimal nginx.conf around the site file: everything in `directory`, no daemon."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {directory}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    return f"""
{user}
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    {mime}
    default_type application/octet-stream;
    access_log {directory}/access.log;
{temp}
    include {site};
}}
"""


class Nginx:
    def __init__(self, binary, directory, port):
        self.binary, self.directory, self.port = binary, directory, port
        self.conf = directory / "nginx.conf"
        self.process = None

    def command(self, *extra):
        return [self.binary, "-e", str(self.directory / "error.log"), "-p", str(self.directory),
                "-c", str(self.conf), *extra]  # fmt: skip

    def start(self):
        check = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(self.command("-g", "daemon off;"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.error_log()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                connection.request("GET", "/healthz", headers={"Host": "127.0.0.1"})
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"nginx did not answer:\n{self.error_log()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def error_log(self):
        path = self.directory / "error.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def deployment(postgres_url, redis_url, tmp_path):
    binary = nginx_binary()
    name = f"tandem_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    static_root = tmp_path / "static"
    env = {
        "TANDEM_PRODUCTION": "1",
        "SECRET_KEY": "deploy-test-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",  # no TLS here; nginx sends X-Forwarded-Proto: http
        "DATABASE_URL": f"{postgres_url.rsplit('/', 1)[0]}/{name}",
        "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/7",
        "STATIC_ROOT": str(static_root),
    }
    env.pop("TANDEM_LOG_FORMAT", None)
    servers, nginx = [], None
    try:
        manage("migrate", "--noinput", env=env)
        manage("collectstatic", "--noinput", env=env)
        create_users({"nina": PASSWORD, "omar": PASSWORD}, env=env)
        document = create_documents("nina", ["Launch"], shares={"omar": "editor"}, env=env)
        options = unit_daphne_options()
        for _ in range(2):
            servers.append(DaphneServer(env=env, log_dir=tmp_path, args=options).start())
        site = tmp_path / "tandem.conf"
        port = free_port()
        site.write_text(
            render_template(
                {
                    "TANDEM_LISTEN": f"127.0.0.1:{port}",
                    "TANDEM_SERVER_NAME": "127.0.0.1 localhost",
                    "TANDEM_UPSTREAM_SERVERS": " ".join(
                        f"server 127.0.0.1:{server.port};" for server in servers
                    ),
                    "TANDEM_STATIC_ROOT": str(static_root),
                }
            )
        )
        nginx = Nginx(binary, tmp_path, port)
        nginx.conf.write_text(nginx_main_conf(tmp_path, site))
        nginx.start()
        yield {"port": port, "document": document["Launch"], "servers": servers,
               "static_root": static_root, "nginx": nginx, "env": env}  # fmt: skip
    finally:
        if nginx is not None:
            nginx.stop()
        for server in servers:
            server.stop()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(
        method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})}
    )
    response = connection.getresponse()
    content = response.read()
    connection.close()
    return response, content


def cookies_of(response):
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def log_in(port, username):
    """The login form through nginx, as a browser posts it; returns the session id."""
    response, _ = request(port, "GET", "/accounts/login/")
    assert response.status == 200
    token = cookies_of(response)["csrftoken"]
    origin = f"http://127.0.0.1:{port}"
    form = urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    response, content = request(port, "POST", "/accounts/login/", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"csrftoken={token}",
        "Origin": origin,
        "Referer": f"{origin}/accounts/login/",
    })  # fmt: skip
    assert response.status == 302, content[:2000]
    return cookies_of(response)["sessionid"]


async def open_editor(port, document, session_id, client_id, origin_port=None):
    """A socket through nginx at `port`, or straight to a daphne at `port` as nginx would
    open it for a browser on nginx's `origin_port`: that origin, and its Host passed on."""
    site = f"127.0.0.1:{origin_port or port}"
    socket = await websockets.connect(
        f"ws://{site}/ws/documents/{document}/",
        host="127.0.0.1",
        port=port,
        origin=f"http://{site}",
        additional_headers={"Cookie": f"sessionid={session_id}"},
    )
    await socket.send(json.dumps({"type": "hello", "client_id": client_id, "version": None}))
    return socket


async def next_of_type(socket, kind, timeout=10):
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == kind:
                return message


def event_stream_first_event(port, document, session_id):
    """The first server-sent event through nginx, or None where the route does not exist.

    It must arrive at once: nginx may not buffer the stream."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", f"/documents/{document}/live/events/", headers={
        "Host": f"127.0.0.1:{port}",
        "Origin": f"http://127.0.0.1:{port}",
        "Cookie": f"sessionid={session_id}",
        "Accept": "text/event-stream",
    })  # fmt: skip
    try:
        response = connection.getresponse()
        if response.status in (404, 405):  # no event-stream route in this version
            return None
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        while True:
            line = response.fp.readline().decode()
            if line.startswith("data: "):
                return json.loads(line.removeprefix("data: "))
    finally:
        connection.close()


def log_entries(servers):
    """Every JSON log line of the daphne processes; fails on a line that looks like JSON
    but is not an object with the four standard fields."""
    entries = []
    for server in servers:
        for line in server.log().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                assert {"time", "level", "logger", "message"} <= set(entry), line
                entries.append(entry)
    return entries


def test_nginx_in_front_of_two_daphnes(deployment):
    port = deployment["port"]

    # The load balancer's probe, through nginx: database and Redis round trip.
    response, content = request(port, "GET", "/healthz")
    assert response.status == 200, content
    assert json.loads(content) == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }

    # Static files come from STATIC_ROOT through nginx, hashed names cached for a year.
    manifest = json.loads((deployment["static_root"] / "staticfiles.json").read_text())
    hashed = manifest["paths"]["vendor/quill/quill.js"]
    response, content = request(port, "GET", f"/static/{hashed}")
    assert response.status == 200
    assert response.getheader("Cache-Control") == "public, max-age=31536000, immutable"
    assert content == (deployment["static_root"] / hashed).read_bytes()
    response, content = request(
        port, "GET", f"/static/{hashed}", headers={"Accept-Encoding": "gzip"}
    )
    assert response.getheader("Content-Encoding") == "gzip"  # the collected .gz file
    response, _ = request(port, "GET", "/static/vendor/quill/quill.js")
    assert response.getheader("Cache-Control") == "public, max-age=300"

    # Django pages through the proxy; /metrics is not exposed there.
    response, content = request(port, "GET", "/accounts/login/")
    assert response.status == 200
    assert b"csrfmiddlewaretoken" in content
    response, _ = request(port, "GET", "/metrics")
    assert response.status == 404

    nina, omar = log_in(port, "nina"), log_in(port, "omar")
    document = deployment["document"]

    async def edit_together():
        # Through nginx both sockets of the document reach the same daphne. A socket straight
        # to each daphne as well: on the other one the edit crosses Redis.
        first = await open_editor(port, document, nina, "deploy-nina-1")
        joined = await next_of_type(first, "joined")
        others = [await open_editor(port, document, omar, "deploy-omar-1")]
        for n, server in enumerate(deployment["servers"]):
            others.append(await open_editor(server.port, document, omar, f"deploy-omar-d{n}",
                                            origin_port=port))  # fmt: skip
        for other in others:
            await next_of_type(other, "joined")
        await first.send(json.dumps({"type": "submit", "seq": 1, "version": joined["version"],
                                     "delta": [{"insert": "Hello"}]}))  # fmt: skip
        ack = await next_of_type(first, "ack")
        received = [await next_of_type(other, "ops") for other in others]
        for socket in (first, *others):
            await socket.close()
        return joined["version"], ack, received

    first_event = event_stream_first_event(port, document, nina)
    if first_event is not None:  # the HTTP fallback transport, where it exists
        assert first_event["type"] == "transport"

    version, ack, received = asyncio.run(edit_together())
    assert ack == {"type": "ack", "seq": 1, "version": version + 1}
    for ops in received:
        assert [(op["version"], op["delta"], op["client_id"]) for op in ops["ops"]] == [
            (version + 1, [{"insert": "Hello"}], "deploy-nina-1")
        ]

    # Every daphne log line is one JSON object; the engine's records carry their fields.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [e.get("event") for e in log_entries(deployment["servers"])]
        if 0 < events.count("connect") == events.count("disconnect"):
            break
        time.sleep(0.2)
    entries = log_entries(deployment["servers"])
    assert any(e["logger"].startswith("daphne") for e in entries)
    tandem = [e for e in entries if e["logger"].startswith("tandem.")]
    assert tandem, "no tandem log lines"
    for entry in tandem:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    connects = [e for e in tandem if e.get("event") == "connect"]
    if connects:  # the engine's structured fields
        assert {e["doc"] for e in connects} == {document}
        assert sum(e.get("transport", "websocket") == "websocket" for e in connects) == 4
        assert sum(e.get("event") == "disconnect" for e in tandem) == len(connects)
    for server in deployment["servers"]:
        stray = [
            line
            for line in server.log().splitlines()
            if line.strip() and not line.startswith(("{", "===="))
        ]
        assert not stray, f"daphne wrote lines that are not JSON:\n{stray[:10]}"


def test_nginx_sends_each_documents_sockets_to_one_daphne(deployment):
    port = deployment["port"]
    titles = [f"Routed {n}" for n in range(16)]
    documents = create_documents("nina", titles, env=deployment["env"])
    nina = log_in(port, "nina")

    async def open_each_twice():
        for title in titles:
            sockets = [
                await open_editor(port, documents[title], nina, f"route-{title[7:]}-{n}")
                for n in range(2)
            ]
            for socket in sockets:
                await next_of_type(socket, "joined")
                await socket.close()

    asyncio.run(open_each_twice())
    served = []  # the documents each daphne saw a socket of
    for server in deployment["servers"]:
        entries = log_entries([server])
        served.append([entry["doc"] for entry in entries if entry.get("event") == "connect"])
    assert sorted(doc for docs in served for doc in docs) == sorted(
        [documents[title] for title in titles] * 2
    )
    first, second = (set(docs) for docs in served)
    assert first.isdisjoint(second), "a document's sockets were split between processes"
    assert first and second, "every document went to one process (16 documents, 2 processes)"
