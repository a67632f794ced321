"""Issue 16 item 11: every page carries a strict Content-Security-Policy, and the editor works
under it in Chromium with zero violations: signing in, the list, a new document, formatted
typing, another editor's cursor, the HTTP fallback and the admin."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import PASSWORDS
from tests.e2e.pages import caret_at_end, contents, wait_converged, wait_joined_page
from tests.e2e.test_content import LEGACY, store_legacy_op
from tests.e2e.test_fallback import BLOCK_WEBSOCKETS, transport
from tests.e2e.test_paste import paste

pytestmark = pytest.mark.e2e

# Reported from the page itself: the event fires for every blocked load, inline script or
# style, eval and frame; Chromium also logs each to the console ("... violates the following
# Content Security Policy directive ...").
WATCH = """
document.addEventListener("securitypolicyviolation", (event) => {
    window.reportViolation({
        page: location.pathname,
        directive: event.effectiveDirective,
        blocked: event.blockedURI,
        sample: event.sample,
        source: `${event.sourceFile}:${event.lineNumber}:${event.columnNumber}`,
    });
});
"""

# A paragraph as copied from a web page or Google Docs: formatting given as inline styles, a
# class, a link and an image (not registered: dropped, and never loaded).
WEB_HTML = (
    '<p style="color: rgb(200, 0, 0); font-family: Georgia" class="lead">Copied '
    '<span style="font-weight: 700">bold</span> '
    '<a href="https://example.com/page" style="text-decoration: none">a link</a>'
    '<img src="https://example.com/logo.png" style="width: 10px"></p>'
)


class PolicyWatch:
    """A browser context whose pages report every CSP violation and every page's policy."""

    def __init__(self, browser, base_url, storage_state=None, init_script=None):
        self.violations = []
        self.console = []
        self.policies = {}
        self.context = browser.new_context(
            base_url=base_url,
            storage_state=storage_state,
            viewport={"width": 1100, "height": 760},
        )
        self.context.expose_binding(
            "reportViolation", lambda _source, violation: self.violations.append(violation)
        )
        self.context.add_init_script(WATCH)
        if init_script:
            self.context.add_init_script(init_script)

    def page(self):
        page = self.context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", self._console)
        page.on("response", self._response)
        return page

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def _response(self, response):
        if response.request.resource_type == "document":
            path = response.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
            self.policies["/" + path] = response.headers.get("content-security-policy")

    def assert_clean(self):
        assert self.violations == [], "\n".join(map(str, self.violations))
        assert self.console == [], self.console
        for path, policy in self.policies.items():
            assert policy, f"no Content-Security-Policy on {path}"
            assert_strict(policy, path)


def directives(policy):
    """{'script-src': ["'self'", "'nonce-...'"], ...} from a header value."""
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def assert_strict(policy, path):
    found = directives(policy)
    assert found["default-src"] == ["'self'"], (path, policy)
    for name in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in found[name] and "'unsafe-eval'" not in found[name]
    # Nothing widens scripts or style sheets past those two.
    assert not {"script-src-elem", "script-src-attr", "style-src-elem"} & set(found), policy
    for name in ("object-src", "base-uri", "frame-ancestors"):
        assert found[name] == ["'none'"], (path, policy)
    assert found["form-action"] == ["'self'"], (path, policy)


@pytest.fixture
def watch(browser, server):
    watches = []

    def make(**kwargs):
        made = PolicyWatch(browser, server.url, **kwargs)
        watches.append(made)
        return made

    yield make
    for made in watches:
        made.context.close()


def sign_in(page, username):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORDS.get(username, "tandem-demo"))
    page.click("main form [type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def test_editor_works_under_the_policy_with_zero_violations(watch, server, login_states):
    alice_watch = watch()
    alice = alice_watch.page()
    sign_in(alice, "alice")
    expect(alice.locator("h1")).to_have_text("Documents")
    alice.click("text=New document")
    alice.fill("input[name=title]", "Under a strict policy")
    alice.click("main form [type=submit]")
    wait_joined_page(alice)
    document_path = alice.url.split(server.url, 1)[1]
    # Shared with bob through the page's form (a post, then the page again).
    alice.fill("form.share input[name=username]", "bob")
    alice.select_option("form.share select[name=role]", "editor")
    alice.click("form.share [type=submit]")
    expect(alice.locator(".access")).to_contain_text("bob")
    wait_joined_page(alice)

    # Formatted typing through the toolbar and keys: a header, bold, a list, a link, a colour.
    alice.click(".ql-editor")
    alice.click(".ql-header .ql-picker-label")
    alice.click(".ql-header .ql-picker-item[data-value='1']")
    alice.keyboard.type("Title")
    alice.keyboard.press("Enter")
    alice.keyboard.press("Control+b")
    alice.keyboard.type("bold")
    alice.keyboard.press("Control+b")
    alice.keyboard.type(" plain")
    alice.keyboard.press("Enter")
    alice.click(".ql-list[value='bullet']")
    alice.keyboard.type("an item")
    alice.keyboard.press("Enter")
    alice.keyboard.press("Enter")
    alice.keyboard.type("a link")
    alice.keyboard.press("Shift+Home")
    alice.click(".ql-link")
    alice.fill(".ql-tooltip input[type=text]", "https://example.com/")
    alice.keyboard.press("Enter")
    caret_at_end(alice)
    alice.keyboard.press("Enter")
    alice.keyboard.type("red")
    alice.keyboard.press("Shift+Home")
    alice.click(".ql-color .ql-picker-label")
    alice.click(".ql-color .ql-picker-item[data-value='#e60000']")
    caret_at_end(alice)
    alice.keyboard.press("Enter")
    end = alice.evaluate("() => window.tandem.quill.getLength() - 1")
    paste(alice, "Copied bold a link", html=WEB_HTML, at=end)
    expect(alice.locator(".ql-editor")).to_contain_text("Copied bold a link")
    expect(alice.locator(".ql-editor h1")).to_have_text("Title")
    expect(alice.locator(".ql-editor strong").first).to_have_text("bold")
    expect(alice.locator(".ql-editor li")).to_have_text("an item")
    expect(alice.locator(".ql-editor a[href='https://example.com/']")).to_have_text("a link")

    # Another editor opens it and sees alice's cursor; a third joins over the HTTP fallback.
    bob_watch = watch(storage_state=login_states("bob"))
    bob = bob_watch.page()
    bob.goto(document_path)
    wait_joined_page(bob)
    caret_at_end(alice)
    alice.keyboard.type("!")
    expect(bob.locator(".ql-cursor").filter(has_text="alice")).to_have_count(1)
    expect(bob.locator(".ql-cursor-caret").first).to_be_visible()
    bob.click(".ql-editor")
    caret_at_end(bob)
    bob.keyboard.type(" and bob")
    expect(alice.locator(".ql-cursor").filter(has_text="bob")).to_have_count(1)

    http_watch = watch(storage_state=login_states("bob"), init_script=BLOCK_WEBSOCKETS)
    over_http = http_watch.page()
    over_http.goto(document_path)
    wait_joined_page(over_http)
    assert transport(over_http) == "http"
    over_http.click(".ql-editor")
    caret_at_end(over_http)
    over_http.keyboard.type(" over HTTP")
    final = wait_converged(alice, bob, over_http)
    assert {"insert": "bold", "attributes": {"bold": True}} in final
    # The paste kept the formatting its styles gave (colour from the paragraph, bold).
    assert {"insert": "bold", "attributes": {"bold": True, "color": "#c80000"}} in final
    assert contents(over_http) == final
    # Back to the list, the new document in it.
    alice.goto("/")
    expect(alice.locator("main")).to_contain_text("Under a strict policy")

    for made in (alice_watch, bob_watch, http_watch):
        made.assert_clean()
    assert {"/accounts/login/", "/", "/documents/new/", document_path} <= set(alice_watch.policies)
    for page in (alice, bob, over_http):
        assert not page.errors, page.errors
    policy = directives(alice_watch.policies[document_path])
    assert any(source.startswith("'nonce-") for source in policy["script-src"])
    assert f"ws://{server.url.split('://', 1)[1]}" in policy["connect-src"]


def test_a_placeholder_for_unknown_content_shows_under_the_policy(
    watch, make_document, server_env, login_states
):
    """No image or embed is registered; the one embed drawn is the stand-in for unknown ones."""
    document_id = make_document()
    store_legacy_op(document_id, LEGACY, server_env)
    alice_watch = watch(storage_state=login_states("alice"))
    alice = alice_watch.page()
    alice.goto(f"/documents/{document_id}/")
    wait_joined_page(alice)
    expect(alice.locator(".ql-editor .tandem-unknown")).to_have_text(
        "[unsupported content: formula]"
    )
    alice_watch.assert_clean()
    assert not alice.errors, alice.errors


def test_admin_and_staff_pages_render_under_the_policy(watch, server):
    demo_watch = watch()
    page = demo_watch.page()
    sign_in(page, "demo")
    paths = [
        "/admin/",
        "/admin/editor/document/",
        "/admin/editor/document/add/",
        "/admin/auth/user/",
        "/admin/auth/user/1/change/",
        "/staff/monitor/",
    ]
    for path in paths:
        response = page.goto(path)
        assert response.status == 200, path
        expect(page.locator("#content, main").first).to_be_visible()
    page.goto("/admin/auth/user/")
    page.click("#action-toggle")
    expect(page.locator(".action-counter")).to_be_visible()
    demo_watch.assert_clean()
    assert set(paths) <= set(demo_watch.policies)
