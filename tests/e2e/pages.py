"""Small helpers shared by the browser tests."""

import json
import time

from tests.live_server import run_python

SYNC_TIMEOUT = 20000


def wait_joined_page(page, timeout=15000):
    """Wait until the page's editor has joined its document over the WebSocket."""
    page.wait_for_function("() => window.tandem && window.tandem.client.joined", timeout=timeout)


def contents(page):
    return page.evaluate("() => window.tandem.quill.getContents().ops")


def text(page):
    return page.evaluate("() => window.tandem.quill.getText()")


def wait_synced(page, timeout=SYNC_TIMEOUT):
    """Joined, nothing pending, and the editor shows exactly what the client believes."""
    try:
        page.wait_for_function(
            """() => {
                const t = window.tandem;
                return t && t.client.joined && t.client.pendingCount() === 0
                    && t.client.held.size === 0 && t.consistent();
            }""",
            timeout=timeout,
        )
    except Exception as error:
        raise AssertionError(f"page never synced: {describe(page)}") from error


def describe(page):
    """The client's state, for failure messages."""
    return page.evaluate(
        """() => {
            const t = window.tandem;
            if (!t) return "no editor";
            const c = t.client;
            return JSON.stringify({
                status: document.getElementById("status").textContent,
                joined: c.joined, version: c.version, state: c.state,
                pending: c.pendingCount(), held: [...c.held.keys()], earlyAck: c.earlyAck,
                consistent: t.consistent(), stats: c.stats, log: t.log || [],
                editor: t.quill.getContents().ops, model: c.localDocument().ops,
            });
        }"""
    )


def wait_converged(*pages, timeout=SYNC_TIMEOUT):
    """Every page synced, on the same version, with identical contents.

    Waits on the pages' own state: each synced, then each on the highest version any of
    them has reached, until one look at all of them finds them alike.
    """
    deadline = time.monotonic() + timeout / 1000
    while True:
        for page in pages:
            wait_synced(page, timeout=timeout)
        states = [page.evaluate(_STATE) for page in pages]
        versions = {state["version"] for state in states}
        docs = {json.dumps(state["ops"], sort_keys=True) for state in states}
        if all(state["synced"] for state in states) and len(versions) == 1:
            if len(docs) != 1:
                raise AssertionError(f"pages diverged on version {versions}:\n{docs}")
            return json.loads(docs.pop())
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"pages did not converge: versions {versions}\n{docs}")
        for page in pages:
            page.wait_for_function(
                "(v) => window.tandem.client.version >= v", arg=max(versions), timeout=left * 1000
            )


# One page's version, contents and whether it is synced, read at one moment.
_STATE = """() => {
    const t = window.tandem;
    const c = t.client;
    return {
        version: c.version,
        ops: t.quill.getContents().ops,
        synced: c.joined && c.pendingCount() === 0 && c.held.size === 0 && t.consistent(),
    };
}"""


def stored(document_id, env):
    """The document as the server's database has it (latest snapshot + ops after it)."""
    code = f"""
import json
from collab.store import load
loaded = load({document_id})
print(json.dumps({{"version": loaded.version, "ops": loaded.content.ops}}))
"""
    return run_python(code, env=env)


def interleave(typing, rounds=None):
    """Type in several pages at the same time: one chunk per page per round.

    typing: [(page, [chunk, ...]), ...]. Keystrokes do not wait for the server, so every
    page has edits in flight while the others' arrive.
    """
    rounds = rounds or max(len(chunks) for _, chunks in typing)
    for i in range(rounds):
        for page, chunks in typing:
            if i < len(chunks):
                page.keyboard.type(chunks[i])


def place_caret(page, index):
    page.evaluate("(i) => window.tandem.quill.setSelection(i, 0, 'user')", index)


def caret_at_end(page):
    page.evaluate(
        "() => { const q = window.tandem.quill; q.setSelection(q.getLength() - 1, 0, 'user'); }"
    )
