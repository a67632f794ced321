// The status pill's wording (static/js/status.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { describeRefusal, describeStatus, formatBytes } from "../../static/js/status.js";

const base = { joined: true, everJoined: true, readonly: false, pending: 0 };

test("saved, saving, read-only while connected", () => {
  assert.deepEqual(describeStatus(base), { text: "Saved", kind: "saved" });
  assert.deepEqual(describeStatus({ ...base, pending: 2 }), { text: "Saving…", kind: "saving" });
  assert.deepEqual(describeStatus({ ...base, readonly: true }), {
    text: "Read-only",
    kind: "readonly",
  });
});

test("offline with pending edits counts them; without, it is reconnecting", () => {
  const offline = { ...base, joined: false };
  assert.equal(describeStatus({ ...offline, pending: 1 }).text, "Offline — 1 change pending");
  assert.equal(describeStatus({ ...offline, pending: 3 }).text, "Offline — 3 changes pending");
  assert.equal(describeStatus({ ...offline, pending: 3 }).kind, "offline");
  assert.deepEqual(describeStatus(offline), { text: "Reconnecting…", kind: "reconnecting" });
  assert.equal(describeStatus({ ...offline, everJoined: false }).text, "Connecting…");
});

test("closes that end the session say why", () => {
  assert.match(describeStatus({ ...base, joined: false, closeCode: 4404 }).text, /No access/);
  assert.match(describeStatus({ ...base, joined: false, closeCode: 4401 }).text, /Signed out/);
});

test("the HTTP fallback is named while joined over it", () => {
  assert.deepEqual(describeStatus({ ...base, transport: "http" }), { text: "Saved · over HTTP", kind: "saved" });
  assert.equal(describeStatus({ ...base, transport: "http", pending: 2 }).text, "Saving… · over HTTP");
  assert.equal(describeStatus({ ...base, transport: "websocket" }).text, "Saved");
  assert.equal(describeStatus({ ...base, transport: "http", joined: false }).text, "Reconnecting…");
});

describe("describeRefusal", () => {
  test("says the document is full, with its limit, and that the change was undone", () => {
    const text = describeRefusal("document_too_large", { document_bytes: 10 * 1024 * 1024 });
    assert.match(text, /size limit \(10 MB\)/);
    assert.match(text, /not saved/);
  });

  test("every code that drops an edit has words", () => {
    for (const code of ["too_large", "bad_delta", "commit_failed", "document_too_large"]) {
      assert.match(describeRefusal(code), /not saved/);
    }
    assert.equal(formatBytes(256 * 1024), "256 KB");
    assert.equal(formatBytes(1500000), "1.4 MB");
  });
});
