"""Real Tandem servers for end-to-end and multi-process tests.

`DaphneServer` runs `daphne editor.asgi:application` in a subprocess on a free (or given)
port, waits until it answers HTTP, and can stop it, SIGKILL it and start it again on the same
port. `sqlite_database()` makes a migrated throwaway SQLite database, `postgres_database()` a
throwaway database on a PostgreSQL server; `manage()` runs a management command against
whatever database an environment points at. `PrivateRedis` is a redis-server of the test's
own, to stop, kill and start again (never the machine's).

    url = sqlite_database(tmp_path)                # or an existing DATABASE_URL
    env = {"DATABASE_URL": url}                    # REDIS_URL too, for several processes
    manage("demo", env=env)
    with DaphneServer(env=env) as server:
        ...  server.url, server.restart(), server.kill() ...
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# A live server lives through many tests, all from 127.0.0.1, and its rate counts cannot be
# reset from outside: its rates are raised, not turned off (docs/throttling.md). A test that
# checks a rate sets its own in `env`; the login lockout keeps its defaults.
LIVE_RATES = {
    "TANDEM_LOGIN_RATE": "1000/10m",
    "TANDEM_SIGNUP_RATE": "1000/h",
    "TANDEM_DOCUMENT_CREATE_RATE": "1000/h",
}


def server_env(env=None):
    """The environment for a server or management command: ours plus `env` on top."""
    merged = {**LIVE_RATES, **os.environ}
    merged.setdefault("DJANGO_SETTINGS_MODULE", "editor.settings")
    merged["PYTHONUNBUFFERED"] = "1"
    merged.update(env or {})
    return merged


def manage(*args, env=None, timeout=120):
    """Run `manage.py ARGS` with `env`; returns its stdout; raises with stderr on failure."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def sqlite_database(directory=None):
    """Create and migrate a fresh SQLite file; returns its DATABASE_URL."""
    directory = Path(directory or tempfile.mkdtemp(prefix="tandem-live-"))
    path = directory / "live.sqlite3"
    url = f"sqlite:///{path}"  # an absolute path gives sqlite://// + path
    manage("migrate", "--noinput", env={"DATABASE_URL": url})
    return url


@contextlib.contextmanager
def postgres_database(server_url, prefix="tandem_live"):
    """A fresh, empty database on the PostgreSQL server of `server_url` (any database of it):
    yields its URL, and drops it afterwards, whoever is still connected."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def run_python(code, env=None):
    """Run Python inside `manage.py shell`; the snippet prints JSON, which is returned."""
    out = manage("shell", "-c", code, env=env)
    return json.loads(out.strip().splitlines()[-1])


def create_users(users, env=None):
    """Create (or reset) users: {"alice": "password", ...}."""
    code = f"""
import json
from django.contrib.auth import get_user_model
User = get_user_model()
for name, password in {users!r}.items():
    user, _ = User.objects.get_or_create(username=name)
    user.set_password(password)
    user.save()
print(json.dumps(sorted({users!r})))
"""
    return run_python(code, env=env)


def create_documents(owner, titles, shares=None, env=None):
    """Documents owned by `owner`, shared as {"bob": "editor", ...}; returns {title: id}."""
    code = f"""
import json
from django.contrib.auth import get_user_model
from editor.models import Document, DocumentAccess
User = get_user_model()
owner = User.objects.get(username={owner!r})
ids = {{}}
for title in {list(titles)!r}:
    document = Document.objects.create(owner=owner, title=title)
    for name, role in {dict(shares or {})!r}.items():
        user = User.objects.get(username=name)
        DocumentAccess.objects.create(document=document, user=user, role=role)
    ids[title] = document.pk
print(json.dumps(ids))
"""
    return run_python(code, env=env)


class DaphneServer:
    """A daphne process serving Tandem on 127.0.0.1:`port` with `env` on top of ours."""

    def __init__(self, port=None, env=None, log_dir=None, ready_timeout=30, args=(), prefix=()):
        self.port = port or free_port()
        self.env = dict(env or {})
        self.args = list(args)  # more daphne options, e.g. those of the systemd unit
        self.prefix = list(prefix)  # a command to run daphne under, e.g. taskset
        self.ready_timeout = ready_timeout
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="tandem-daphne-"))
        self.log_path = self.log_dir / f"daphne-{self.port}.log"
        self.process = None
        self._log = None
        self.starts = 0

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self):
        return f"ws://{HOST}:{self.port}"

    def start(self):
        if self.running:
            return self
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in _reap
        self.starts += 1
        self._log.write(f"\n==== start #{self.starts} on port {self.port}\n")
        self._log.flush()
        self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "daphne",
                "-b",
                HOST,
                "-p",
                str(self.port),
                *self.args,
                "editor.asgi:application",
            ],
            cwd=ROOT,
            env=server_env(self.env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()
        return self

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=10):
        """SIGTERM, wait, SIGKILL if it will not go."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap()

    def kill(self):
        """SIGKILL: the process gets no chance to flush or say goodbye."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reap()

    def restart(self, kill=False):
        """Stop (or kill) and start again on the same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def _reap(self):
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"daphne did not answer within {self.ready_timeout}s:\n{self.log()}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PrivateRedis:
    """A redis-server of the test's own on a free port, with nothing persisted."""

    def __init__(self, directory):
        self.port = free_port()
        self.dir = directory
        self.process = None

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}/0"

    def start(self):
        """Start it (again, on the same port) and wait until it answers PING."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        ping = ["redis-cli", "-p", str(self.port), "ping"]
        while subprocess.run(ping, capture_output=True, text=True).stdout.strip() != "PONG":
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return self

    def stop(self):
        """SIGTERM and wait."""
        self._end(self.process.terminate if self.process else None)

    def kill(self):
        """SIGKILL: every connection drops at once, and what it held is gone."""
        self._end(self.process.kill if self.process else None)

    def _end(self, signal_it):
        if signal_it is not None:
            signal_it()
            self.process.wait(10)
            self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
