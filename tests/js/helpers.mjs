// Test helpers: a simulated Tandem server and a client harness around SyncClient.
import Delta from "quill-delta";

import { SyncClient } from "../../static/js/sync.js";

export { Delta };

/**
 * Does what the real server does with edits: a submitted edit made on version v is
 * transformed against every edit committed after v, the committed side winning ties
 * (committed.transform(submitted, true)); a resent seq is acknowledged with its original
 * version and not applied twice.
 */
export class FakeServer {
  constructor(content = [{ insert: "\n" }]) {
    this.doc = new Delta(content);
    this.ops = []; // committed, index i holds version i + 1
    this.bySeq = new Map(); // `${client}:${seq}` -> version
    this.lastSeq = new Map(); // client -> last committed seq
  }

  get version() {
    return this.ops.length;
  }

  /** Returns {ack, op} or {error}. */
  submit(clientId, { seq, version, delta }) {
    const key = `${clientId}:${seq}`;
    if (this.bySeq.has(key)) return { ack: { type: "ack", seq, version: this.bySeq.get(key) } };
    if (version > this.version) return { error: { type: "error", code: "future_version", seq } };
    const last = this.lastSeq.get(clientId) || 0;
    if (seq > last + 1) return { error: { type: "error", code: "bad_sequence", seq } };
    let change = new Delta(delta);
    for (const committed of this.ops.slice(version)) change = committed.delta.transform(change, true);
    this.doc = this.doc.compose(change);
    const op = { version: this.version + 1, delta: change, client_id: clientId, seq };
    this.ops.push(op);
    this.bySeq.set(key, op.version);
    this.lastSeq.set(clientId, seq);
    return { ack: { type: "ack", seq, version: op.version }, op };
  }

  /** Committed ops after `from`, as the wire carries them (plain op lists). */
  opsAfter(from) {
    return this.ops.slice(from).map((op) => wire(op));
  }

  /** The answer to a hello at `version`; whole content (null) names `clientId`'s last seq. */
  joined(version, clientId = null) {
    const base = { type: "joined", version: this.version, role: "editor", readonly: false };
    if (version === null || version === undefined) {
      return { ...base, content: this.doc.ops, committed_seq: this.lastSeq.get(clientId) || 0 };
    }
    return { ...base, ops: this.opsAfter(version) };
  }
}

export function wire(op) {
  return {
    version: op.version,
    delta: JSON.parse(JSON.stringify(op.delta.ops)),
    client_id: op.client_id,
    seq: op.seq,
    user: 1,
  };
}

/** A SyncClient plus a model of the editor it drives, and the messages it sent. */
export function makeClient(clientId = "client-a", options = {}) {
  const harness = { sent: [], editor: new Delta().insert("\n"), applied: [] };
  harness.client = new SyncClient({
    ...options,
    Delta,
    clientId,
    send: (message) => harness.sent.push(JSON.parse(JSON.stringify(message))),
    apply: (delta, info) => {
      harness.editor = harness.editor.compose(delta);
      harness.applied.push({ delta, info });
    },
  });
  harness.edit = (ops) => {
    const delta = new Delta(ops);
    harness.editor = harness.editor.compose(delta);
    harness.client.localEdit(delta);
  };
  harness.take = () => harness.sent.splice(0);
  return harness;
}

/** Connect a harness to the server: hello then joined. */
export function connect(harness, server) {
  const hello = harness.client.hello();
  harness.client.receive(server.joined(hello.version));
  return hello;
}

/** A seeded PRNG (mulberry32) so that failing random runs can be replayed. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random edit on `doc` (keeps the final newline): insert, delete or format. */
export function randomEdit(doc, random) {
  const length = doc.length();
  const pick = (n) => Math.floor(random() * n);
  const index = pick(length); // 0 .. length - 1
  const kind = random();
  const delta = new Delta().retain(index);
  if (kind < 0.5 || length === 1) {
    const alphabet = "abcxyz \n";
    let text = "";
    const n = 1 + pick(4);
    for (let i = 0; i < n; i += 1) text += alphabet[pick(alphabet.length)];
    const attributes = random() < 0.3 ? { bold: true } : undefined;
    return delta.insert(text, attributes);
  }
  const room = length - 1 - index;
  if (room <= 0) return new Delta().retain(index).insert("q");
  const count = 1 + pick(Math.min(room, 5));
  if (kind < 0.8) return delta.delete(count);
  return delta.retain(count, random() < 0.5 ? { italic: true } : { italic: null });
}
