// How the client (static/js/sync.js) handles every edit error code, large edits and edits that
// get no answer: none of them may wedge the later edits (docs/protocol.md, "Error codes").
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { jsonBytes } from "../../static/js/split.js";
import { DROP_CODES, retryDelay } from "../../static/js/sync.js";
import { connect, Delta, FakeServer, makeClient } from "./helpers.mjs";

const text = (delta) =>
  delta.ops.map((op) => (typeof op.insert === "string" ? op.insert : "")).join("");

/** A client joined to a fake server whose `joined` tells `limits`; a settable clock. */
function setup(content = [{ insert: "\n" }], limits = null) {
  const clock = { t: 0 };
  const h = makeClient("client-a", { now: () => clock.t, random: () => 0.5, ackTimeout: 15000 });
  const server = new FakeServer(content);
  const hello = h.client.hello();
  h.client.receive({ ...server.joined(hello.version), ...(limits ? { limits } : {}) });
  return { h, server, clock };
}

/** Deliver every submit to the server and its answer back, until nothing is sent. */
function settle(h, server) {
  for (;;) {
    const sent = h.take().filter((m) => m.type === "submit");
    if (sent.length === 0) return;
    for (const message of sent) h.client.receive(server.submit(h.client.clientId, message).ack);
  }
}

const refusal = (code, seq) => ({ type: "error", code, message: "", seq });

describe("a refused edit is undone alone and later edits save", () => {
  for (const code of DROP_CODES) {
    test(code, () => {
      const { h, server } = setup([{ insert: "keep\n" }]);
      h.edit([{ insert: "refused " }]); // in flight as seq 1
      h.edit([{ retain: 12 }, { insert: "!" }]); // buffered, after the refused text
      h.edit([{ insert: ">" }]); // and before it
      assert.deepEqual(h.client.receive(refusal(code, 1)), { action: "dropped", code });
      // The page no longer shows the refused text; the later edits stay where they were.
      assert.equal(text(h.editor), ">keep!\n");
      assert.deepEqual(h.editor, h.client.localDocument());
      const sent = h.take();
      assert.equal(sent.length, 2);
      assert.equal(sent[1].seq, 1); // the refused seq was never committed: used again
      h.client.receive(server.submit(h.client.clientId, sent[1]).ack);
      settle(h, server);
      assert.equal(text(server.doc), ">keep!\n");
      assert.equal(h.client.pendingCount(), 0);
      h.edit([{ retain: 6 }, { insert: "?" }]);
      settle(h, server);
      assert.deepEqual(server.doc, h.editor);
      assert.equal(h.client.stats.dropped, 1);
    });
  }

  test("an error naming another seq than the one in flight changes nothing", () => {
    const { h } = setup();
    h.edit([{ insert: "x" }]);
    assert.equal(h.client.receive(refusal("too_large", 7)), null);
    assert.equal(text(h.editor), "x\n");
    assert.equal(h.client.pendingCount(), 1);
  });

  test("a socket closed for a frame too big (1009) drops the in-flight edit", () => {
    const { h, server } = setup();
    h.edit([{ insert: "huge" }]);
    h.edit([{ retain: 4 }, { insert: "." }]);
    assert.deepEqual(h.client.disconnected(1009), { action: "dropped", code: "too_large" });
    assert.equal(text(h.editor), ".\n");
    assert.equal(h.client.disconnected(1006), null);
    h.take();
    connect(h, server);
    settle(h, server);
    assert.equal(text(server.doc), ".\n");
  });
});

describe("a large local edit goes as several edits under the server's limits", () => {
  const limits = { message_bytes: 4096, delta_ops: 50, delta_chars: 1e6, document_bytes: 1e7 };

  test("a big paste is cut, sent in order one at a time, and saved whole", () => {
    const { h, server } = setup([{ insert: "start\n" }], limits);
    const paste = "é line of pasted text\n".repeat(2000);
    h.edit([{ retain: 5 }, { insert: paste }]);
    let submits = 0;
    for (;;) {
      const sent = h.take().filter((m) => m.type === "submit");
      if (!sent.length) break;
      assert.equal(sent.length, 1); // one in flight at a time
      const [message] = sent;
      assert.ok(jsonBytes(message) <= limits.message_bytes, `${jsonBytes(message)} bytes`);
      submits += 1;
      if (submits < 5) assert.ok(h.client.pendingCount() > 0);
      h.client.receive(server.submit(h.client.clientId, message).ack);
    }
    assert.ok(submits > 10, `${submits} submits`);
    assert.equal(h.client.pendingCount(), 0);
    assert.deepEqual(server.doc, h.editor);
  });

  test("formatted text over the op limit is cut by ops, and typing meanwhile saves too", () => {
    const { h, server } = setup([{ insert: "\n" }], limits);
    const paste = new Delta();
    for (let i = 0; i < 400; i += 1) paste.insert(`w${i} `, i % 2 ? { bold: true } : undefined);
    h.edit(paste.ops);
    const [first] = h.take();
    assert.ok(first.delta.length <= limits.delta_ops);
    h.client.receive(server.submit(h.client.clientId, first).ack);
    h.edit([{ insert: "typed " }]); // while the rest of the paste is still to go
    settle(h, server);
    assert.deepEqual(server.doc, h.editor);
    assert.ok(text(server.doc).startsWith("typed w0 w1 "));
  });

  test("a part refused at the document limit is undone; the parts before it stay", () => {
    const { h, server } = setup([{ insert: "\n" }], limits);
    h.edit([{ insert: "a".repeat(10000) }]);
    const [first] = h.take();
    h.client.receive(server.submit(h.client.clientId, first).ack);
    const [second] = h.take();
    const hint = h.client.receive(refusal("document_too_large", second.seq));
    assert.equal(hint.code, "document_too_large");
    settle(h, server);
    assert.deepEqual(server.doc, h.editor);
    assert.equal(text(h.editor).length, 10001 - second.delta[1].insert.length);
  });
});

describe("transient refusals are resent", () => {
  test("unavailable: resent unchanged after a growing pause", () => {
    const { h, server, clock } = setup();
    h.edit([{ insert: "x" }]);
    const [first] = h.take();
    const delays = [];
    for (let round = 0; round < 3; round += 1) {
      const hint = h.client.receive(refusal("unavailable", 1));
      assert.equal(hint.action, "retry-later");
      assert.equal(hint.seq, 1);
      delays.push(hint.after);
      clock.t += 60000;
      assert.equal(h.client.tick(), null); // waiting to resend is not waiting for an answer
      h.client.resendInflight(1);
      assert.deepEqual(h.take(), [first]);
    }
    assert.ok(delays[0] < delays[1] && delays[1] < delays[2], `${delays}`);
    h.client.receive(server.submit(h.client.clientId, first).ack);
    assert.equal(h.client.pendingCount(), 0);
    assert.equal(retryDelay("unavailable", 30, () => 1), 10000); // capped
  });

  test("a resend for an edit no longer in flight sends nothing", () => {
    const { h, server } = setup();
    h.edit([{ insert: "x" }]);
    const [first] = h.take();
    h.client.receive(refusal("rate_limited", 1));
    h.client.disconnected();
    connect(h, server); // the new connection resent it already
    h.take();
    h.client.receive(server.submit(h.client.clientId, first).ack);
    h.client.resendInflight(1);
    assert.deepEqual(h.take(), []);
  });
});

describe("an edit with no answer", () => {
  test("after the ack timeout, tick asks for a new connection, which resends it once", () => {
    const { h, server, clock } = setup();
    h.edit([{ insert: "lost?" }]);
    const [first] = h.take();
    server.submit(h.client.clientId, first); // committed, but the ack never arrives
    clock.t += 14999;
    assert.equal(h.client.tick(), null);
    clock.t += 1;
    assert.deepEqual(h.client.tick(), { action: "reconnect" });
    assert.equal(h.client.tick(), null); // asked once
    h.client.disconnected();
    const hello = h.client.hello();
    h.client.receive({ type: "joined", version: 0, ops: [] });
    assert.equal(hello.version, 0);
    const resent = h.take().filter((m) => m.type === "submit");
    assert.deepEqual(resent, [first]);
    // The server knows the seq: acked with its first version, applied once.
    h.client.receive(server.submit(h.client.clientId, resent[0]).ack);
    assert.equal(server.version, 1);
    assert.equal(h.client.pendingCount(), 0);
    assert.deepEqual(server.doc, h.editor);
    assert.equal(h.client.stats.timeouts, 1);
  });

  test("the timeout starts again with each send", () => {
    const { h, server, clock } = setup();
    h.edit([{ insert: "a" }]);
    const [first] = h.take();
    clock.t += 10000;
    h.client.receive(server.submit(h.client.clientId, first).ack);
    h.edit([{ insert: "b" }]);
    clock.t += 10000;
    assert.equal(h.client.tick(), null);
  });
});

describe("client_id_taken", () => {
  test("continues under a fresh client id, its in-flight edit as seq 1", () => {
    const { h, server } = setup();
    h.edit([{ insert: "x" }]);
    h.take();
    const before = h.client.clientId;
    const hint = h.client.receive({ type: "error", code: "client_id_taken", message: "" });
    assert.equal(hint.action, "reconnect");
    assert.notEqual(h.client.clientId, before);
    h.client.disconnected();
    const hello = h.client.hello();
    assert.equal(hello.client_id, h.client.clientId);
    h.client.receive(server.joined(hello.version));
    settle(h, server);
    assert.equal(server.ops[0].client_id, h.client.clientId);
    assert.equal(server.ops[0].seq, 1);
  });
});

describe("unavailable before joined", () => {
  test("asks to join again later, each time later, keeping the edits made meanwhile", () => {
    const clock = { t: 0 };
    const h = makeClient("client-a", { now: () => clock.t, random: () => 0.5, ackTimeout: 15000 });
    const server = new FakeServer([{ insert: "\n" }]);
    h.client.hello();
    h.edit([{ insert: "offline " }]); // typed before the document opened
    const first = h.client.receive({ type: "error", code: "unavailable", message: "" });
    assert.equal(first.action, "reconnect-later");
    h.client.disconnected();
    h.client.hello();
    const second = h.client.receive({ type: "error", code: "unavailable", message: "" });
    assert.ok(second.after > first.after, `${second.after} > ${first.after}`);
    h.client.disconnected();
    const hello = h.client.hello();
    h.client.receive(server.joined(hello.version));
    settle(h, server);
    assert.equal(text(server.doc), "offline \n");
  });
});

describe("a committed edit whose ack was lost", () => {
  test("is applied once when the rejoin sends the whole document", () => {
    const { h, server } = setup([{ insert: "abc\n" }]);
    h.edit([{ retain: 3 }, { insert: "D" }]);
    const [submit] = h.take();
    server.submit(h.client.clientId, submit); // committed; the ack is lost with the socket
    h.client.disconnected();
    h.edit([{ insert: "E" }]); // typed offline
    for (let n = 1; n <= 1001; n++) {
      server.submit("other", { seq: n, version: server.version, delta: [{ retain: 1 }] });
    }
    h.client.hello();
    // Too far behind for the ops: the server answers with the document and our last seq.
    h.client.receive(server.joined(null, h.client.clientId));
    settle(h, server);
    assert.equal(text(server.doc), "EabcD\n");
    assert.deepEqual(h.editor, server.doc);
    assert.equal(h.client.pendingCount(), 0);
  });
});
