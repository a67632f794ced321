"""Fixtures for browser tests: a real daphne server, Debian's chromium, logged-in pages.

The server runs against a fresh migrated SQLite file, or against DATABASE_URL (and REDIS_URL)
when the environment gives them. Browsers cannot be downloaded here: Playwright drives
/usr/bin/chromium (TANDEM_CHROMIUM overrides the path).
"""

import itertools
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.pages import wait_joined_page
from tests.live_server import (
    DaphneServer,
    create_documents,
    create_users,
    manage,
    sqlite_database,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORDS = {
    "alice": "alice-live-pass-1",
    "bob": "bob-live-pass-1",
    "victor": "victor-live-pass-1",
}
_titles = itertools.count(1)


@pytest.fixture(scope="session")
def server_env(tmp_path_factory):
    env = {}
    for name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if "DATABASE_URL" in env:
        manage("migrate", "--noinput", env=env)
    else:
        env["DATABASE_URL"] = sqlite_database(tmp_path_factory.mktemp("db"))
    manage("demo", env=env)
    create_users(PASSWORDS, env=env)
    return env


@pytest.fixture(scope="session")
def daphne_server(server_env, tmp_path_factory):
    server = DaphneServer(env=server_env, log_dir=tmp_path_factory.mktemp("daphne"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(daphne_server):
    """The shared server, started again if an earlier test stopped it."""
    if not daphne_server.running:
        daphne_server.start()
    return daphne_server


@pytest.fixture
def make_document(server_env):
    """A fresh document of alice's, bob editor and victor viewer; returns its id."""

    def make(title=None):
        title = title or f"Live test {next(_titles)}"
        ids = create_documents(
            "alice", [title], {"bob": "editor", "victor": "viewer"}, env=server_env
        )
        return ids[title]

    return make


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def login_states(browser, daphne_server, tmp_path_factory):
    """Storage states (session cookies) per user, made by posting the login form once."""
    states = {}
    folder = tmp_path_factory.mktemp("states")

    def state(username):
        if username not in states:
            context = browser.new_context(base_url=daphne_server.url)
            page = context.new_page()
            page.goto("/accounts/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", PASSWORDS[username])
            page.click("main form [type=submit]")
            page.wait_for_url(lambda url: "/accounts/login/" not in url)
            path = folder / f"{username}.json"
            context.storage_state(path=str(path))
            context.close()
            states[username] = str(path)
        return states[username]

    return state


@pytest.fixture
def open_page(browser, server, login_states):
    """open_page(user, document_id) -> a Page with the editor joined and showing."""
    contexts = []

    def open_(username, document_id, wait_joined=True, before_goto=None, base_url=None):
        context = browser.new_context(
            base_url=base_url or server.url,
            storage_state=login_states(username),
            viewport={"width": 1100, "height": 760},
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.errors = []
        if before_goto:
            before_goto(page)
        page.goto(f"/documents/{document_id}/")
        if wait_joined:
            wait_joined_page(page)
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
