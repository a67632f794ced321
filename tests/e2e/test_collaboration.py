"""Issue 5 acceptance: two people editing one document in real browsers on a real server."""

import base64
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import (
    SYNC_TIMEOUT,
    caret_at_end,
    contents,
    interleave,
    place_caret,
    stored,
    text,
    wait_converged,
    wait_joined_page,
    wait_synced,
)
from tests.e2e.proxy import OutageProxy

pytestmark = pytest.mark.e2e


def leaving_warns(page):
    """Whether the page's beforeunload handler would ask before leaving."""
    return page.evaluate(
        """() => {
            const event = new Event("beforeunload", { cancelable: true });
            window.dispatchEvent(event);
            return event.defaultPrevented;
        }"""
    )


def test_two_users_typing_at_once_converge_in_pages_and_database(
    open_page, make_document, server_env
):
    document_id = make_document()
    alice = open_page("alice", document_id)
    bob = open_page("bob", document_id)

    alice.click(".ql-editor")
    alice.keyboard.type("First paragraph.")
    alice.keyboard.press("Enter")
    alice.keyboard.type("Second paragraph.")
    wait_converged(alice, bob)

    # Different paragraphs: alice at the end of the first, bob at the end of the second.
    place_caret(alice, len("First paragraph."))
    caret_at_end(bob)
    interleave([(alice, [" a1", " a2", " a3", " a4"]), (bob, [" b1", " b2", " b3", " b4"])])
    # The same paragraph, the same spot: both at the very start of the second paragraph.
    wait_converged(alice, bob)
    start_of_second = text(alice).index("Second")
    place_caret(alice, start_of_second)
    place_caret(bob, start_of_second)
    interleave([(alice, ["A", "A", "A", "A"]), (bob, ["B", "B", "B", "B"])])

    final = wait_converged(alice, bob)
    final_text = "".join(op["insert"] for op in final)
    assert final_text.startswith("First paragraph. a1 a2 a3 a4\n")
    assert final_text.count("A") == 4 and final_text.count("B") == 4
    assert " b1 b2 b3 b4" in final_text
    assert not alice.errors and not bob.errors

    # The server's database holds exactly what the pages show, and a new page loads it.
    assert stored(document_id, server_env)["ops"] == final
    carol = open_page("alice", document_id)
    wait_synced(carol)
    assert contents(carol) == final


def test_bold_and_remote_cursor_with_name_and_screenshot(open_page, make_document, artifacts):
    document_id = make_document()
    alice = open_page("alice", document_id)
    bob = open_page("bob", document_id)

    alice.click(".ql-editor")
    alice.keyboard.type("hello world")
    alice.evaluate("() => window.tandem.quill.setSelection(0, 5, 'user')")
    alice.keyboard.press("Control+b")
    wait_converged(alice, bob)
    expect(bob.locator(".ql-editor strong")).to_have_text("hello")
    assert contents(bob)[0] == {"insert": "hello", "attributes": {"bold": True}}

    # Bob sees alice's cursor, in her colour and with her name; and both in "Here now".
    caret_at_end(alice)
    alice.keyboard.type("!")
    cursor = bob.locator(".ql-cursor").filter(has_text="alice")
    expect(cursor).to_have_count(1)
    expect(cursor.locator(".ql-cursor-caret")).to_be_visible()
    expect(cursor.locator(".ql-cursor-name")).to_have_text("alice")
    expect(bob.locator("#presence li", has_text="alice")).to_have_count(1)
    expect(bob.locator("#presence li", has_text="bob (you)")).to_have_count(1)
    dot = bob.locator("#presence li", has_text="alice").evaluate(
        "li => li.style.getPropertyValue('--dot')"
    )
    assert dot.startswith("#")

    # Mid-collaboration: bob types too, and the moment is kept for review.
    bob.click(".ql-editor")
    caret_at_end(bob)
    bob.keyboard.type(" and bob")
    expect(alice.locator(".ql-cursor").filter(has_text="bob")).to_have_count(1)
    shots = {
        "alice": alice.screenshot(path=str(artifacts / "collaboration-alice.png")),
        "bob": bob.screenshot(path=str(artifacts / "collaboration-bob.png")),
    }
    side_by_side(alice.context, shots, artifacts / "collaboration.png")
    wait_converged(alice, bob)


def side_by_side(context, shots, path):
    """One image of both pages next to each other (rendered by the browser itself)."""
    cells = "".join(
        f'<figure><figcaption>{name}</figcaption><img src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"></figure>'
        for name, png in shots.items()
    )
    page = context.new_page()
    page.set_viewport_size({"width": 2240, "height": 840})
    page.set_content(
        "<style>body{margin:0;display:flex;gap:20px;background:#ccd;font:16px sans-serif}"
        "figure{margin:10px}img{display:block;border:1px solid #889}</style>" + cells
    )
    page.screenshot(path=str(path), full_page=True)
    page.close()


def on_websocket(page):
    """Wait until the page has joined over a WebSocket (not the HTTP fallback)."""
    page.wait_for_function(
        """() => window.tandem.client.joined
            && window.tandem.connection.socketTransport === 'websocket'""",
        timeout=SYNC_TIMEOUT,
    )


def test_lost_connection_shows_offline_and_merges_on_return(open_page, make_document, server):
    document_id = make_document()
    with OutageProxy(server.port) as network:
        alice = open_page("alice", document_id)
        bob = open_page("bob", document_id, base_url=network.url)
        alice.click(".ql-editor")
        alice.keyboard.type("Shared start.")
        wait_converged(alice, bob)

        # Cut bob off: his connections closed, new ones (WebSocket or HTTP) refused.
        network.down()
        expect(bob.locator("#status")).not_to_have_text("Saved")

        caret_at_end(bob)
        bob.keyboard.type(" Bob offline one.")
        expect(bob.locator("#status")).to_contain_text("Offline")
        expect(bob.locator("#status")).to_have_class(re.compile(r"\boffline\b"))
        caret_at_end(alice)
        alice.keyboard.type(" Alice meanwhile.")
        bob.keyboard.press("Enter")
        bob.keyboard.type("Bob offline two.")
        assert bob.evaluate("() => window.tandem.client.pendingCount()") > 0
        assert "Alice meanwhile" not in text(bob)
        assert leaving_warns(bob), "unsynced edits: leaving the page asks first"

        network.up()
        final = wait_converged(alice, bob, timeout=30000)
        final_text = "".join(op["insert"] for op in final)
        pieces = ("Shared start.", " Bob offline one.", " Alice meanwhile.", "Bob offline two.")
        for piece in pieces:
            assert final_text.count(piece) == 1, (piece, final_text)
        # However long the outage lasted, the page is back on a WebSocket.
        on_websocket(bob)
        expect(bob.locator("#status")).to_have_text("Saved")
        assert not leaving_warns(bob)


def test_after_an_outage_long_enough_to_try_http_the_page_returns_to_a_websocket(
    open_page, make_document, server
):
    """WebSockets failed and so did HTTP: the network was down, nothing was blocked."""
    document_id = make_document()
    with OutageProxy(server.port) as network:
        bob = open_page("bob", document_id, base_url=network.url)
        bob.click(".ql-editor")
        bob.keyboard.type("Before.")
        wait_synced(bob)

        network.down()
        caret_at_end(bob)
        bob.keyboard.type(" During.")
        # The page tried WebSockets, then the HTTP fallback, and each failed.
        network.wait_refused("/live/events/")
        network.up()

        on_websocket(bob)
        wait_synced(bob)
        expect(bob.locator("#status")).to_have_text("Saved")
        assert bob.evaluate("() => window.tandem.connection.transport") == "websocket"
        alice = open_page("alice", document_id)
        assert wait_converged(alice, bob) == [{"insert": "Before. During.\n"}]


# Records, from now on, which transport each connection the page opens is on.
RECORD_OPENS = """() => {
    const c = window.tandem.connection;
    const onOpen = c.onOpen;
    window.opened = [];
    c.onOpen = () => {
        window.opened.push(c.socketTransport);
        onOpen();
    };
}"""


def test_outages_and_then_a_blip_do_not_send_the_page_to_http(open_page, make_document, server):
    """Drops after which a WebSocket cannot open are outages, not a proxy that cuts
    WebSockets: three drops within two minutes do not make a fallback when two were outages."""
    document_id = make_document()
    with OutageProxy(server.port) as network:
        bob = open_page("bob", document_id, base_url=network.url)
        started = bob.evaluate("() => Date.now()")
        socket_path = f"/ws/documents/{document_id}/"
        for _ in range(2):
            refused = network.refused(socket_path)
            network.down()
            network.wait_refused(socket_path, count=refused + 1)  # the drop, then a failure
            network.up()
            on_websocket(bob)
        bob.evaluate(RECORD_OPENS)
        network.blip()
        bob.wait_for_function("() => window.opened.length > 0", timeout=SYNC_TIMEOUT)
        took = bob.evaluate("(started) => (Date.now() - started) / 1000", started)
        print(f"two outages and a blip in {took:.1f} s (the page counts drops for 120 s)")
        assert bob.evaluate("() => window.opened") == ["websocket"]
        on_websocket(bob)
        expect(bob.locator("#status")).to_have_text("Saved")
        bob.click(".ql-editor")
        bob.keyboard.type("After the blip.")
        alice = open_page("alice", document_id)
        assert wait_converged(alice, bob) == [{"insert": "After the blip.\n"}]


def test_server_restart_during_editing_loses_nothing(open_page, make_document, server):
    document_id = make_document()
    alice = open_page("alice", document_id)
    bob = open_page("bob", document_id)
    alice.click(".ql-editor")
    alice.keyboard.type("Before restart.")
    wait_converged(alice, bob)

    caret_at_end(alice)
    alice.keyboard.type(" alice-1")
    # Bob writes at the start: two people typing at one spot at once may interleave their
    # characters (still converging), which would blur what this test counts.
    bob.evaluate("() => window.tandem.quill.setSelection(0, 0, 'user')")
    bob.keyboard.type(" bob-1")
    server.kill()  # mid-editing, edits possibly in flight
    alice.keyboard.type(" alice-2")
    bob.keyboard.type(" bob-2")
    expect(alice.locator("#status")).to_contain_text(re.compile("Offline|Reconnecting"))
    server.start()
    alice.keyboard.type(" alice-3")

    final = wait_converged(alice, bob, timeout=30000)
    final_text = "".join(op["insert"] for op in final)
    for piece in ("Before restart.", " alice-1", " alice-2", " alice-3", " bob-1", " bob-2"):
        assert final_text.count(piece) == 1, (piece, final_text)


def test_viewer_is_read_only_and_undo_is_per_user(open_page, make_document):
    document_id = make_document()
    alice = open_page("alice", document_id)
    bob = open_page("bob", document_id)
    victor = open_page("victor", document_id)

    expect(victor.locator("#status")).to_have_text("Read-only")
    expect(victor.locator(".ql-editor")).to_have_attribute("contenteditable", "false")
    victor.click(".ql-editor", force=True)
    victor.keyboard.type("viewer was here")

    # One undo step whatever the clock says: Quill groups changes made within its history
    # delay (500 ms), so typing key by key on a busy machine could make several. One input
    # is one change, and the cutoff ends the step so that nothing later joins it.
    alice.click(".ql-editor")
    alice.keyboard.insert_text("alice text")
    alice.evaluate("() => window.tandem.quill.history.cutoff()")
    wait_converged(alice, bob, victor)
    caret_at_end(bob)
    bob.keyboard.type(" bob text")
    wait_converged(alice, bob, victor)
    assert text(victor) == "alice text bob text\n", "viewer updates live, never edits"

    # Alice undoes: her own typing goes, bob's stays; redo brings hers back.
    alice.click(".ql-editor")
    alice.keyboard.press("Control+z")
    wait_converged(alice, bob, victor)
    assert text(alice) == " bob text\n"
    alice.keyboard.press("Control+Shift+z")
    wait_converged(alice, bob, victor)
    assert text(bob) == "alice text bob text\n"
    assert not victor.errors


def test_reload_shows_the_persisted_document(open_page, make_document):
    document_id = make_document()
    alice = open_page("alice", document_id)
    alice.click(".ql-editor")
    alice.keyboard.type("Kept")
    alice.keyboard.press("Enter")
    alice.keyboard.type("across reloads")
    alice.evaluate("() => window.tandem.quill.formatLine(0, 1, 'header', 1, 'user')")
    wait_synced(alice)
    before = contents(alice)
    alice.reload()
    wait_joined_page(alice)
    wait_synced(alice)
    assert contents(alice) == before
    expect(alice.locator(".ql-editor h1")).to_have_text("Kept")
    expect(alice.locator("#status")).to_have_text("Saved")


def test_rename_and_lock_reach_open_pages_without_reload(open_page, make_document):
    document_id = make_document()
    alice = open_page("alice", document_id)
    bob = open_page("bob", document_id)
    alice.goto(f"/documents/{document_id}/rename/")
    alice.fill("input[name=title]", "Renamed live")
    alice.click("main form [type=submit]")
    expect(bob.locator("#doc-title")).to_have_text("Renamed live")
    expect(bob).to_have_title(re.compile("Renamed live"))

    wait_joined_page(alice)
    alice.locator("form[action$='/lock/'] button").click()
    expect(bob.locator("#status")).to_have_text("Read-only")
    expect(bob.locator(".ql-editor")).to_have_attribute("contenteditable", "false")
