// Remote cursors (static/js/presence.js): placed through committed and pending edits.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Presence } from "../../static/js/presence.js";
import { connect, FakeServer, makeClient, wire } from "./helpers.mjs";

class FakeCursors {
  constructor() {
    this.cursors = new Map();
    this.flags = [];
  }
  createCursor(id, name, color) {
    if (!this.cursors.has(id)) this.cursors.set(id, { id, name, color, range: null });
    return this.cursors.get(id);
  }
  moveCursor(id, range) {
    this.cursors.get(id).range = range;
  }
  removeCursor(id) {
    this.cursors.delete(id);
  }
  toggleFlag(id, show) {
    this.flags.push([id, show]);
  }
}

function setup() {
  const h = makeClient();
  const server = new FakeServer([{ insert: "hello world\n" }]);
  connect(h, server);
  h.take();
  const cursors = new FakeCursors();
  const presence = new Presence({ client: h.client, cursors, list: null, schedule: (fn) => fn() });
  presence.joined({ session: "me", user: { id: 1, name: "ada", color: "#111" } }, []);
  return { h, server, cursors, presence };
}

const bob = { id: 2, name: "bob", color: "#e6194b" };

test("a remote cursor is drawn with its name and colour, moved by later edits", () => {
  const { h, server, cursors, presence } = setup();
  presence.update({ session: "s2", user: bob, selection: { index: 6, length: 5 }, version: 0 });
  assert.deepEqual(cursors.cursors.get("s2"), {
    id: "s2",
    name: "bob",
    color: "#e6194b",
    range: { index: 6, length: 5 },
  });
  const op = server.submit("x", { seq: 1, version: 0, delta: [{ insert: "Oh, " }] }).op;
  h.client.receive({ type: "ops", ops: [wire(op)] });
  presence.changed();
  assert.deepEqual(cursors.cursors.get("s2").range, { index: 10, length: 5 });
  h.edit([{ insert: "> " }]); // our pending edit shifts it on our screen
  presence.changed();
  assert.deepEqual(cursors.cursors.get("s2").range, { index: 12, length: 5 });
  assert.ok(cursors.flags.some(([id, show]) => id === "s2" && show), "name shown on move");
});

test("a selection from a version we do not have yet waits; leave removes the cursor", () => {
  const { cursors, presence } = setup();
  presence.update({ session: "s2", user: bob, selection: { index: 1, length: 0 }, version: 3 });
  assert.equal(cursors.cursors.has("s2"), false);
  presence.update({ session: "s2", user: bob, selection: { index: 2, length: 0 }, version: 0 });
  assert.deepEqual(cursors.cursors.get("s2").range, { index: 2, length: 0 });
  presence.leave("s2");
  assert.equal(cursors.cursors.has("s2"), false);
});

test("our own session in joined.presence is not drawn", () => {
  const { cursors, presence } = setup();
  presence.joined({ session: "me", user: { id: 1, name: "ada" } }, [
    { session: "me", user: { id: 1, name: "ada" }, selection: { index: 0, length: 0 }, version: 0 },
  ]);
  assert.equal(cursors.cursors.size, 0);
});
