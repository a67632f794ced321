"""Issue 7 in real browsers: WebSockets blocked, slow networks, and the way back."""

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import (
    caret_at_end,
    interleave,
    place_caret,
    stored,
    text,
    wait_converged,
    wait_joined_page,
)
from tests.e2e.proxy import SlowProxy

pytestmark = pytest.mark.e2e

# What a proxy that refuses the upgrade looks like to a page: every WebSocket fails to open
# (error, then close 1006), until the test lifts the block with `window.unblockWebSockets()`.
BLOCK_WEBSOCKETS = """
(() => {
  const Real = window.WebSocket;
  let blocked = true;
  window.unblockWebSockets = () => { blocked = false; };
  window.WebSocket = function (url, protocols) {
    if (!blocked) return new Real(url, protocols);
    const fake = { readyState: 0, send() { throw new Error("not open"); }, close() {} };
    setTimeout(() => {
      if (fake.onerror) fake.onerror(new Event("error"));
      if (fake.onclose) fake.onclose({ code: 1006, reason: "", wasClean: false });
    }, 30);
    return fake;
  };
})();
"""

# About 300 ms each way and a slow link, as on a poor mobile or satellite connection.
SLOW_NETWORK = {
    "offline": False,
    "latency": 300,
    "downloadThroughput": 48 * 1024,
    "uploadThroughput": 24 * 1024,
}


def blocked(page):
    page.add_init_script(BLOCK_WEBSOCKETS)


def slow(page):
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send("Network.emulateNetworkConditions", SLOW_NETWORK)


def round_trip_ms(page):
    """Milliseconds from typing one character to the server's acknowledgement of it."""
    page.click(".ql-editor")
    caret_at_end(page)
    started = page.evaluate("() => performance.now()")
    page.keyboard.type(".")
    page.wait_for_function("() => window.tandem.client.pendingCount() === 0")
    return page.evaluate("() => performance.now()") - started


def transport(page):
    return page.evaluate("() => window.tandem.connection.transport")


def test_blocked_websocket_falls_back_to_http_and_edits_with_everyone(
    open_page, make_document, server_env
):
    document_id = make_document()
    alice = open_page("alice", document_id)
    bob = open_page("bob", document_id, before_goto=blocked)
    assert transport(alice) == "websocket"
    assert transport(bob) == "http"
    expect(bob.locator("#status")).to_have_text("Saved · over HTTP")
    expect(bob.locator("#status")).to_have_attribute("data-transport", "http")
    expect(alice.locator("#status")).to_have_text("Saved")
    expect(bob.locator("#presence")).to_contain_text("alice")
    expect(alice.locator("#presence")).to_contain_text("bob")

    alice.click(".ql-editor")
    alice.keyboard.type("Alice on a socket.")
    alice.keyboard.press("Enter")
    wait_converged(alice, bob)
    bob.click(".ql-editor")
    caret_at_end(bob)
    bob.keyboard.type("Bob over HTTP")
    wait_converged(alice, bob)
    # At once, each in their own paragraph.
    place_caret(alice, len("Alice on a socket."))
    caret_at_end(bob)
    interleave([(alice, [" a1", " a2", " a3"]), (bob, [" b1", " b2", " b3"])])
    final = wait_converged(alice, bob)
    final_text = "".join(op["insert"] for op in final)
    assert final_text == "Alice on a socket. a1 a2 a3\nBob over HTTP b1 b2 b3\n"
    assert stored(document_id, server_env)["ops"] == final
    assert not alice.errors and not bob.errors


def test_fallback_returns_to_websocket_when_it_works_again(open_page, make_document):
    document_id = make_document()
    bob = open_page("bob", document_id, before_goto=blocked)
    assert transport(bob) == "http"
    bob.click(".ql-editor")
    bob.keyboard.type("typed over HTTP")
    bob.evaluate("() => window.unblockWebSockets()")
    # The page probes once a minute; do now what the next probe would.
    bob.evaluate("() => window.tandem.connection._probeOnce()")
    bob.wait_for_function("() => window.tandem.connection.transport === 'websocket'")
    wait_joined_page(bob)
    expect(bob.locator("#status")).to_have_text("Saved")
    bob.keyboard.type(", then over a socket")
    alice = open_page("alice", document_id)
    wait_converged(alice, bob)
    assert text(alice) == "typed over HTTP, then over a socket\n"


def test_slow_network_on_both_transports_converges_and_says_saving(
    open_page, make_document, server
):
    """About 300 ms of round trip and a slow link: a proxy delays both transports (Chromium's
    emulation does not touch WebSockets), and the DevTools emulation slows HTTP further."""
    document_id = make_document()

    def slow_and_blocked(page):
        blocked(page)
        slow(page)

    with SlowProxy(server.port) as proxy:
        alice = open_page("alice", document_id, base_url=proxy.url)
        bob = open_page("bob", document_id, before_goto=slow_and_blocked, base_url=proxy.url)
        check_slow_typing_converges(alice, bob)


def check_slow_typing_converges(alice, bob):
    assert (transport(alice), transport(bob)) == ("websocket", "http")

    alice.click(".ql-editor")
    bob.click(".ql-editor")
    caret_at_end(bob)
    for page in (alice, bob):
        # Both transports are slowed: an edit takes at least the round trip to be acked.
        assert round_trip_ms(page) >= 300
    alice.keyboard.type("Slow alice. ")
    # With a 300 ms round trip an edit is visibly in flight: the status says so, then settles.
    expect(alice.locator("#status")).to_have_text("Saving…")
    wait_converged(alice, bob, timeout=60000)
    caret_at_end(bob)
    bob.keyboard.press("Enter")
    wait_converged(alice, bob, timeout=60000)
    # Both at once, each at the end of their own paragraph.
    place_caret(alice, len(text(alice).split("\n")[0]))
    caret_at_end(bob)
    interleave([(alice, ["one ", "two ", "three "]), (bob, ["uno ", "dos ", "tres "])])
    final = wait_converged(alice, bob, timeout=60000)
    lines = "".join(op["insert"] for op in final).split("\n")
    assert lines[0].endswith("Slow alice. one two three ")
    assert lines[1] == "uno dos tres "
    expect(alice.locator("#status")).to_have_text("Saved")
    expect(bob.locator("#status")).to_have_text("Saved · over HTTP")
    assert not alice.errors and not bob.errors
