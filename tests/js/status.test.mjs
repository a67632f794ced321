// The status pill's wording (static/js/status.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeStatus } from "../../static/js/status.js";

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
