"""Issue 16 item 7: content the editor cannot render never bricks a document.

A document stored before the server checked formats (written here straight into the log,
as an old server would have) still loads, shows a placeholder, stays editable and saves;
and what the editor itself makes (toolbar, paste) is all accepted by the server.
"""

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.pages import caret_at_end, contents, stored, wait_joined_page, wait_synced
from tests.live_server import run_python

pytestmark = pytest.mark.e2e

# Onto the new document's "\n": an embed Quill has no blot for, a font, a header level it lacks.
LEGACY = [
    {"insert": "Before "},
    {"insert": {"formula": "e^x"}},
    {"insert": " after", "attributes": {"font": "serif", "bold": True}},
    {"retain": 1, "attributes": {"header": 7}},
]


def store_legacy_op(document_id, delta, env):
    """Version 1 of the document, written to the log as a server without the check did."""
    code = f"""
import json
from collab.models import Operation
delta = json.loads({json.dumps(json.dumps(delta))})
Operation.objects.create(document_id={document_id}, version=1, delta=delta,
                         client_id="legacy-client-1", seq=1)
print(json.dumps(True))
"""
    run_python(code, env=env)


def test_a_stored_unknown_embed_shows_a_placeholder_and_the_page_stays_editable(
    open_page, make_document, server_env
):
    document_id = make_document()
    store_legacy_op(document_id, LEGACY, server_env)
    alice = open_page("alice", document_id)

    placeholder = alice.locator(".ql-editor .tandem-unknown")
    expect(placeholder).to_have_text("[unsupported content: formula]")
    expect(alice.locator(".ql-editor")).to_have_attribute("contenteditable", "true")
    expect(alice.locator(".ql-editor strong")).to_have_text(" after")
    caret_at_end(alice)
    alice.keyboard.type(" and more")
    wait_synced(alice)
    expect(alice.locator("#status")).to_have_text("Saved")

    # The stored content is kept as it was (only the page shows it differently), plus the edit.
    saved = stored(document_id, server_env)
    assert saved["version"] >= 2
    assert saved["ops"] == [
        *LEGACY[:3],
        {"insert": " and more", "attributes": {"bold": True}},
        {"insert": "\n", "attributes": {"header": 7}},
    ]
    assert not alice.errors and not [e for e in alice.evaluate("() => tandem.log")]

    alice.reload()
    wait_joined_page(alice)
    wait_synced(alice)
    expect(placeholder).to_have_count(1)
    assert "after and more" in alice.evaluate("() => tandem.quill.getText()")
    assert not alice.errors


def test_what_the_toolbar_and_a_paste_make_is_saved(open_page, make_document, server_env):
    document_id = make_document()
    alice = open_page("alice", document_id)
    alice.click(".ql-editor")
    alice.keyboard.type("Heading")
    alice.locator(".ql-toolbar .ql-header .ql-picker-label").click()
    alice.locator(".ql-toolbar .ql-header .ql-picker-item[data-value='2']").click()
    alice.keyboard.press("End")
    alice.keyboard.press("Enter")
    alice.locator(".ql-toolbar button.ql-list[value='check']").click()
    alice.keyboard.type("task")
    alice.keyboard.press("Enter")
    alice.locator(".ql-toolbar button.ql-list[value='check']").click()
    alice.locator(".ql-toolbar button.ql-code-block").click()
    alice.keyboard.type("code")
    wait_synced(alice)
    # A web page's HTML: named and rgb() colors, a font, a size, an image, links of all kinds.
    alice.evaluate(
        """() => tandem.quill.clipboard.dangerouslyPasteHTML(0,
            '<p><span style="color: red; font-family: serif; font-size: 30px">red</span>'
            + '<span style="color: rgb(0, 128, 0)">green</span>'
            + '<span style="color: inherit">plain</span><img src="https://example.com/x.png">'
            + '<a href="https://example.com/a">web</a><a href="javascript:alert(1)">js</a>'
            + '<a href="mailto:a@example.com">mail</a><s>gone</s><u>under</u></p>', "user")"""
    )
    wait_synced(alice)
    assert not alice.evaluate("() => tandem.log"), "the server refused something"
    saved = stored(document_id, server_env)["ops"]
    assert saved == contents(alice)
    by_text = {
        op["insert"]: op.get("attributes", {}) for op in saved if isinstance(op["insert"], str)
    }
    assert {"insert": "\n", "attributes": {"header": 2}} in saved
    assert {"insert": "\n", "attributes": {"list": "unchecked"}} in saved
    assert {"insert": "\n", "attributes": {"code-block": "plain"}} in saved
    assert by_text["red"] == {"color": "#ff0000"}
    assert by_text["green"] == {"color": "#008000"}
    assert by_text["web"] == {"link": "https://example.com/a"}
    assert by_text["mail"] == {"link": "mailto:a@example.com"}
    assert by_text["gone"] == {"strike": True} and by_text["under"] == {"underline": True}
    assert all("link" not in attributes for text, attributes in by_text.items() if "js" in text)
    assert not any(isinstance(op["insert"], dict) for op in saved)
    assert not alice.errors
