// The client state machine (static/js/sync.js) against docs/protocol.md.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { SyncState } from "../../static/js/sync.js";
import { connect, Delta, FakeServer, makeClient, wire } from "./helpers.mjs";

const text = (delta) =>
  delta.ops.map((op) => (typeof op.insert === "string" ? op.insert : "")).join("");

function joinedEmpty(harness, server = new FakeServer()) {
  connect(harness, server);
  harness.take();
  return server;
}

/** Deliver what the client sent to the server; returns the server's answers per message. */
function deliver(harness, server, clientId = harness.client.clientId) {
  const answers = [];
  for (const message of harness.take()) {
    if (message.type === "submit") answers.push(server.submit(clientId, message));
    if (message.type === "fetch") {
      answers.push({ ops: { type: "ops", ops: server.opsAfter(message.from) } });
    }
  }
  return answers;
}

describe("joining", () => {
  test("hello carries the client id and a null version on a fresh load", () => {
    const h = makeClient("client-hello");
    assert.deepEqual(h.client.hello(), { type: "hello", client_id: "client-hello", version: null });
  });

  test("joined with content loads the document into the editor", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "Hello\n" }]);
    server.submit("other", { seq: 1, version: 0, delta: [{ retain: 5 }, { insert: "!" }] });
    connect(h, server);
    assert.equal(h.client.version, 1);
    assert.equal(text(h.editor), "Hello!\n");
    assert.deepEqual(h.editor, h.client.localDocument());
    assert.equal(h.client.state, SyncState.SYNCHRONIZED);
  });

  test("ops that arrive before joined are held until the document is known", () => {
    const h = makeClient();
    const server = new FakeServer();
    h.client.hello();
    server.submit("other", { seq: 1, version: 0, delta: [{ insert: "a" }] });
    h.client.receive({ type: "ops", ops: server.opsAfter(0) });
    h.client.receive({ type: "joined", version: 0, content: [{ insert: "\n" }] });
    assert.equal(text(h.editor), "a\n");
    assert.equal(h.client.version, 1);
  });
});

describe("sending", () => {
  test("a local edit is submitted at once with seq 1 on the current version", () => {
    const h = makeClient();
    joinedEmpty(h);
    h.edit([{ insert: "A" }]);
    assert.deepEqual(h.take(), [
      { type: "submit", seq: 1, version: 0, delta: [{ insert: "A" }] },
    ]);
    assert.equal(h.client.state, SyncState.AWAITING_ACK);
    assert.equal(h.client.pendingCount(), 1);
  });

  test("further edits are buffered, composed, and sent after the ack", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "A" }]);
    h.edit([{ retain: 1 }, { insert: "B" }]);
    h.edit([{ retain: 2 }, { insert: "C" }]);
    assert.equal(h.client.state, SyncState.AWAITING_WITH_BUFFER);
    assert.equal(h.client.pendingCount(), 3);
    const [first] = deliver(h, server);
    assert.equal(h.sent.length, 0, "one edit in flight at most");
    h.client.receive(first.ack);
    assert.deepEqual(h.sent, [
      { type: "submit", seq: 2, version: 1, delta: [{ retain: 1 }, { insert: "BC" }] },
    ]);
    assert.equal(h.client.pendingCount(), 2);
    const [second] = deliver(h, server);
    h.client.receive(second.ack);
    assert.equal(h.client.state, SyncState.SYNCHRONIZED);
    assert.equal(h.client.pendingCount(), 0);
    assert.equal(h.client.version, 2);
    assert.equal(text(server.doc), "ABC\n");
    assert.deepEqual(h.client.doc, server.doc);
  });

  test("an ack for another seq (a stale duplicate) is ignored", () => {
    const h = makeClient();
    joinedEmpty(h);
    h.edit([{ insert: "A" }]);
    h.client.receive({ type: "ack", seq: 7, version: 1 });
    assert.equal(h.client.state, SyncState.AWAITING_ACK);
    assert.equal(h.client.version, 0);
  });

  test("nothing is sent while disconnected; the buffer goes out after joined", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.client.disconnected();
    h.edit([{ insert: "x" }]);
    h.edit([{ retain: 1 }, { insert: "y" }]);
    assert.deepEqual(h.take(), []);
    assert.equal(h.client.pendingCount(), 2);
    connect(h, server);
    assert.deepEqual(h.take(), [
      { type: "submit", seq: 1, version: 0, delta: [{ insert: "xy" }] },
    ]);
  });
});

describe("remote edits", () => {
  test("while synchronized they apply as they are", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    const { op } = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "hi" }] });
    h.client.receive({ type: "ops", ops: [wire(op)] });
    assert.equal(text(h.editor), "hi\n");
    assert.equal(h.client.version, 1);
  });

  test("ties: the committed edit goes first, in the server and in every client", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "A" }]); // in flight on version 0
    const { op } = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "B" }] });
    h.client.receive({ type: "ops", ops: [wire(op)] });
    assert.equal(text(h.editor), "BA\n", "remote insert at the same place goes before ours");
    assert.deepEqual(h.client.inflight.delta, new Delta().retain(1).insert("A"));
    const [answer] = deliver(h, server);
    assert.equal(text(server.doc), "BA\n");
    h.client.receive(answer.ack);
    assert.deepEqual(h.client.doc, server.doc);
    assert.deepEqual(h.editor, server.doc);
  });

  test("while awaiting with a buffer, both pending edits are transformed", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "0123456789\n" }]);
    connect(h, server);
    h.take();
    h.edit([{ retain: 2 }, { insert: "a" }]); // inflight
    h.edit([{ retain: 8 }, { delete: 2 }]); // buffer
    const { op } = server.submit("b", {
      seq: 1,
      version: 0,
      delta: [{ retain: 5 }, { insert: "XY" }, { retain: 3 }, { attributes: { bold: true }, retain: 2 }],
    });
    h.client.receive({ type: "ops", ops: [wire(op)] });
    assert.deepEqual(h.editor, h.client.localDocument());
    for (;;) {
      const answers = deliver(h, server);
      if (answers.length === 0) break;
      for (const answer of answers) h.client.receive(answer.ack);
    }
    assert.equal(h.client.state, SyncState.SYNCHRONIZED);
    assert.deepEqual(h.editor, server.doc);
    // "78" deleted by our buffer, "89" made bold by the remote edit: "9" stays, bold.
    assert.deepEqual(
      server.doc,
      new Delta().insert("01a234XY56").insert("9", { bold: true }).insert("\n"),
    );
  });

  test("a delivered-twice op is ignored", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    const { op } = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "once" }] });
    h.client.receive({ type: "ops", ops: [wire(op)] });
    h.client.receive({ type: "ops", ops: [wire(op), wire(op)] });
    assert.equal(text(h.editor), "once\n");
    assert.equal(h.client.version, 1);
    assert.deepEqual(h.take(), [], "no fetch for duplicates");
  });
});

describe("gaps and fetch", () => {
  test("an op ahead of the next version is held and a fetch is requested once", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    const one = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "1" }] }).op;
    const two = server.submit("b", { seq: 2, version: 1, delta: [{ insert: "2" }] }).op;
    const three = server.submit("b", { seq: 3, version: 2, delta: [{ insert: "3" }] }).op;
    h.client.receive({ type: "ops", ops: [wire(two)] });
    h.client.receive({ type: "ops", ops: [wire(three)] });
    assert.equal(h.client.version, 0);
    assert.equal(text(h.editor), "\n");
    assert.deepEqual(h.take(), [{ type: "fetch", from: 0 }]);
    h.client.receive({ type: "ops", ops: [wire(one), wire(two), wire(three)] });
    assert.equal(h.client.version, 3);
    assert.equal(text(h.editor), "321\n");
    assert.deepEqual(h.take(), []);
  });

  test("tick re-asks when a fetch answer never came", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    server.submit("b", { seq: 1, version: 0, delta: [{ insert: "1" }] });
    const two = server.submit("b", { seq: 2, version: 1, delta: [{ insert: "2" }] }).op;
    h.client.receive({ type: "ops", ops: [wire(two)] });
    assert.deepEqual(h.take(), [{ type: "fetch", from: 0 }]);
    h.client.tick();
    assert.deepEqual(h.take(), [], "first tick only notes the version");
    h.client.tick();
    assert.deepEqual(h.take(), [{ type: "fetch", from: 0 }]);
  });

  test("our own edit in a fetch answer acts as the ack; the later ack is ignored", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "mine" }]);
    h.edit([{ retain: 4 }, { insert: "!" }]);
    const [answer] = deliver(h, server); // committed as version 1, ack not yet delivered
    const other = server.submit("b", { seq: 1, version: 1, delta: [{ insert: ">" }] }).op;
    h.client.receive({ type: "ops", ops: [wire(other)] }); // version 2: a gap
    assert.deepEqual(h.take(), [{ type: "fetch", from: 0 }]);
    h.client.receive({ type: "ops", ops: server.opsAfter(0) });
    assert.equal(h.client.version, 2);
    // The buffer left the moment version 1 was recognised as ours, so it is on version 1.
    const [next] = h.take();
    assert.deepEqual(next, { type: "submit", seq: 2, version: 1, delta: [{ retain: 4 }, { insert: "!" }] });
    h.client.receive(answer.ack); // seq 1, late
    assert.equal(h.client.inflight.seq, 2);
    assert.deepEqual(h.editor, h.client.localDocument());
    assert.equal(text(h.editor), ">mine!\n");
    h.client.receive(server.submit(h.client.clientId, next).ack);
    assert.deepEqual(h.editor, server.doc);
  });

  test("a batch that holds our edit between others' is our ack, in its place", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "mine" }]);
    const [submitted] = h.take();
    const before = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "B" }] }).op;
    const ours = server.submit(h.client.clientId, submitted).op;
    const after = server.submit("c", { seq: 1, version: 0, delta: [{ insert: "C" }] }).op;
    h.edit([{ retain: 4 }, { insert: "!" }]); // typed while the batch was on its way
    h.client.receive({ type: "ops", ops: [before, ours, after].map(wire) });
    assert.equal(h.client.version, 3);
    const [next] = h.take(); // the buffer leaves on the ack, made on version 2
    assert.equal(next.type, "submit");
    assert.equal(next.version, 2);
    h.client.receive(server.submit(h.client.clientId, next).ack);
    assert.equal(h.client.version, 4);
    assert.equal(h.client.inflight, null);
    assert.deepEqual(h.editor, server.doc);
    assert.deepEqual(h.editor, h.client.localDocument());
  });

  test("an early ack waits until the missing ops arrive", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "A" }]);
    const submitted = h.take()[0];
    const b = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "B" }] }).op;
    const ours = server.submit(h.client.clientId, submitted);
    assert.equal(ours.ack.version, 2);
    h.client.receive(ours.ack); // ahead: version 1 is missing
    assert.equal(h.client.state, SyncState.AWAITING_ACK);
    assert.equal(h.client.version, 0);
    h.client.receive({ type: "ops", ops: [wire(b)] });
    assert.equal(h.client.state, SyncState.SYNCHRONIZED);
    assert.equal(h.client.version, 2);
    assert.deepEqual(h.editor, server.doc);
    assert.equal(text(server.doc), "BA\n");
  });

  test("an early ack plus held ops behind a gap resolve after the fetch", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "A" }]);
    const submitted = h.take()[0];
    const b1 = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "1" }] }).op;
    const b2 = server.submit("b", { seq: 2, version: 1, delta: [{ insert: "2" }] }).op;
    const ours = server.submit(h.client.clientId, submitted);
    const b4 = server.submit("b", { seq: 3, version: 3, delta: [{ insert: "4" }] }).op;
    h.client.receive(ours.ack);
    h.client.receive({ type: "ops", ops: [wire(b2), wire(b4)] });
    assert.deepEqual(h.take(), [{ type: "fetch", from: 0 }]);
    h.client.receive({ type: "ops", ops: [wire(b1)] });
    assert.equal(h.client.version, 4);
    assert.deepEqual(h.editor, server.doc);
  });
});

describe("reconnecting", () => {
  test("the in-flight edit is resent unchanged: same seq, version and delta", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "lost?" }]);
    const [original] = h.take();
    h.client.disconnected();
    const other = server.submit("b", { seq: 1, version: 0, delta: [{ insert: "B" }] });
    h.edit([{ retain: 5 }, { insert: "!" }]); // buffered while offline
    assert.equal(h.client.pendingCount(), 2);
    const hello = connect(h, server);
    assert.equal(hello.version, 0);
    assert.equal(text(h.editor), "Blost?!\n", "catch-up op applied on top of ours");
    const [resent] = h.take();
    assert.deepEqual(resent, original);
    assert.ok(other.op);
    const answer = server.submit(h.client.clientId, resent);
    h.client.receive(answer.ack);
    const [next] = h.take();
    assert.equal(next.seq, 2);
    server.submit(h.client.clientId, next).ack && h.client.receive({ type: "ack", seq: 2, version: 3 });
    assert.deepEqual(h.editor, server.doc);
    assert.equal(text(server.doc), "Blost?!\n");
  });

  test("an edit committed before the drop is recognised in the catch-up, not resent", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "kept" }]);
    deliver(h, server); // committed, ack lost with the socket
    h.client.disconnected();
    h.edit([{ retain: 4 }, { insert: "+" }]);
    connect(h, server);
    assert.deepEqual(h.take(), [
      { type: "submit", seq: 2, version: 1, delta: [{ retain: 4 }, { insert: "+" }] },
    ]);
    assert.equal(h.client.version, 1);
  });

  test("a resent edit that was already committed is acknowledged, not applied twice", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "x" }]);
    const [sent] = h.take();
    server.submit(h.client.clientId, sent);
    const again = server.submit(h.client.clientId, sent);
    assert.deepEqual(again.ack, { type: "ack", seq: 1, version: 1 });
    assert.equal(again.op, undefined);
    h.client.receive(again.ack);
    assert.equal(text(server.doc), "x\n");
    assert.deepEqual(h.editor, server.doc);
  });

  test("joined with content while edits are pending rebases them on the new document", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "abc\n" }]);
    connect(h, server);
    h.take();
    h.client.disconnected();
    h.edit([{ retain: 3 }, { insert: "D" }]);
    server.submit("b", { seq: 1, version: 0, delta: [{ insert: "Z" }] });
    h.client.requestResync();
    const hello = h.client.hello();
    assert.equal(hello.version, null);
    h.client.receive(server.joined(null));
    assert.equal(text(h.editor), "ZabcD\n");
    const [submit] = h.take();
    assert.deepEqual(submit, { type: "submit", seq: 1, version: 1, delta: [{ retain: 4 }, { insert: "D" }] });
    h.client.receive(server.submit(h.client.clientId, submit).ack);
    assert.deepEqual(h.editor, server.doc);
  });
});

describe("errors", () => {
  test("read_only reverts the pending edits and reuses their seq", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "keep\n" }]);
    connect(h, server);
    h.take();
    h.edit([{ insert: "no" }]);
    h.edit([{ retain: 6 }, { insert: "!" }]);
    const hint = h.client.receive({ type: "error", code: "read_only", message: "", seq: 1 });
    assert.deepEqual(hint, { action: "read-only", code: "read_only" });
    assert.equal(text(h.editor), "keep\n");
    assert.equal(h.client.pendingCount(), 0);
    assert.equal(h.client.nextSeq, 1);
  });

  test("rate_limited asks for a later resend of the same edit", () => {
    const h = makeClient();
    joinedEmpty(h);
    h.edit([{ insert: "x" }]);
    const [first] = h.take();
    const hint = h.client.receive({ type: "error", code: "rate_limited", message: "", seq: 1 });
    assert.deepEqual(hint, { action: "retry-later", seq: 1, after: 1000, code: "rate_limited" });
    h.client.resendInflight(1);
    assert.deepEqual(h.take(), [first]);
  });

  test("version_too_old asks for a resync; the edit is rebased and submitted again", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "x" }]);
    h.take();
    const hint = h.client.receive({ type: "error", code: "version_too_old", message: "", seq: 1 });
    assert.equal(hint.action, "resync");
    h.client.disconnected();
    assert.equal(connect(h, server).version, null);
    assert.deepEqual(h.take(), [{ type: "submit", seq: 1, version: 0, delta: [{ insert: "x" }] }]);
  });

  test("an edit refused again after each resync is finally given up, not retried forever", () => {
    const h = makeClient();
    const server = joinedEmpty(h);
    h.edit([{ insert: "x" }]);
    const refuse = () =>
      h.client.receive({ type: "error", code: "does_not_fit", message: "", seq: 1 });
    for (let round = 0; round < 2; round += 1) {
      assert.equal(refuse().action, "resync");
      h.client.disconnected();
      connect(h, server);
      h.take();
    }
    assert.deepEqual(refuse(), { action: "dropped", code: "does_not_fit" });
    assert.equal(text(h.editor), "\n");
    assert.equal(h.client.pendingCount(), 0);
  });

  test("errors that do not concern the in-flight edit change nothing", () => {
    const h = makeClient();
    joinedEmpty(h);
    h.edit([{ insert: "x" }]);
    assert.equal(h.client.receive({ type: "error", code: "bad_message", message: "" }), null);
    assert.equal(h.client.pendingCount(), 1);
    assert.deepEqual(h.client.receive({ type: "error", code: "not_joined" }), {
      action: "reconnect",
    });
  });
});

describe("cursor positions", () => {
  test("a remote range moves through later committed edits and our pending ones", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "hello world\n" }]);
    connect(h, server);
    h.take();
    const at0 = { index: 6, length: 5 }; // "world" at version 0
    const op = server.submit("b", { seq: 1, version: 0, delta: [{ insert: ">> " }] }).op;
    h.client.receive({ type: "ops", ops: [wire(op)] });
    assert.deepEqual(h.client.rangeToCurrent(at0, 0), { index: 9, length: 5 });
    h.edit([{ retain: 3 }, { insert: "Oh, " }]); // pending, before "world"
    assert.deepEqual(h.client.rangeToLocal(at0, 0), { index: 13, length: 5 });
    assert.equal(h.client.rangeToLocal(at0, 5), null, "from a version we do not have yet");
  });

  test("our selection is expressed on the committed version for presence", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "abcdef\n" }]);
    connect(h, server);
    h.take();
    h.edit([{ insert: "XYZ" }]);
    assert.deepEqual(h.client.rangeToCommitted({ index: 5, length: 2 }), { index: 2, length: 2 });
    assert.deepEqual(h.client.rangeToCommitted({ index: 1, length: 0 }), { index: 0, length: 0 });
  });

  test("lengths count UTF-16 code units, as the protocol says", () => {
    const h = makeClient();
    const server = new FakeServer([{ insert: "😀a\n" }]);
    connect(h, server);
    h.take();
    h.edit([{ retain: 3 }, { insert: "b" }]);
    assert.deepEqual(h.take(), [
      { type: "submit", seq: 1, version: 0, delta: [{ retain: 3 }, { insert: "b" }] },
    ]);
    assert.equal(text(h.editor), "😀ab\n");
  });
});
