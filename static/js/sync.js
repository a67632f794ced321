/**
 * The client half of the Tandem edit protocol (docs/protocol.md) as a pure state machine.
 *
 * No DOM, no WebSocket, no timers: the page feeds it local edits, server messages and ticks (the
 * clock is injected), and it answers through three callbacks:
 *
 *   send(message)        a protocol message to put on the socket (only called while joined)
 *   apply(delta, info)   a change to apply to the editor, in the editor's coordinates;
 *                        info.kind is "remote" (a committed edit of someone else), "reset"
 *                        (the server sent a whole document) or "revert" (our refused edits)
 *   onChange()           something observable changed (status, version, pending count)
 *
 * It is the ot.js client: Synchronized (nothing in flight), AwaitingAck (one edit in flight)
 * or AwaitingWithBuffer (one in flight, later local edits composed into a buffer). Committed
 * edits are applied strictly in version order; anything that arrives early is held and a
 * `fetch` asks for the gap. The Delta class is injected so that the same code runs in the
 * browser (Quill.import("delta")) and in node's tests (the quill-delta package).
 *
 * A local edit larger than the server's limits (a big paste) goes as several edits in order,
 * each cut to fit (split.js). An edit the server refuses for good (too large, past the
 * document's size limit, malformed, not committable) is dropped and undone alone: later
 * pending edits are rebased as if it had never been made, and save as usual. An edit that
 * gets neither an ack nor an error within `ackTimeout` makes `tick` ask for a new connection,
 * on which it is resent (the server's seq de-duplication keeps it exactly once).
 *
 * Tie-breaking mirrors the server, which rebases a submitted edit with
 * committed.transform(submitted, true): the committed edit wins ties. So for a committed
 * edit R arriving while our edit P is pending:
 *   P' = R.transform(P, true)    what the server will turn P into
 *   R' = P.transform(R, false)   R as it applies on top of our P
 * and doc∘P∘R' equals doc∘R∘P'.
 */

import { deltaBudget, splitHead } from "./split.js";

export const SyncState = Object.freeze({
  SYNCHRONIZED: "synchronized",
  AWAITING_ACK: "awaiting-ack",
  AWAITING_WITH_BUFFER: "awaiting-with-buffer",
});

/** Error codes after which the client must fetch the whole document again (see protocol). */
const RESYNC_CODES = new Set(["does_not_fit", "future_version", "version_too_old", "bad_sequence"]);
/** Resyncs in a row (without an ack between) before a refused edit is given up. */
const MAX_RESYNCS = 2;
/** Error codes after which the named edit cannot be committed: it alone is undone locally. */
export const DROP_CODES = new Set(["too_large", "document_too_large", "bad_delta", "commit_failed"]);
/** Error codes after which the named edit is resent unchanged after a pause. */
export const RETRY_CODES = new Set(["rate_limited", "unavailable"]);
/** The close code of a frame over the transport's limit: the in-flight edit was too large. */
export const CLOSE_TOO_BIG = 1009;
/** Until `joined` says otherwise: the server's defaults (docs/protocol.md). */
const DEFAULT_LIMITS = Object.freeze({
  message_bytes: 256 * 1024,
  delta_ops: 10000,
  delta_chars: 1000000,
  document_bytes: null,
});

/** Milliseconds before resending an edit refused with `code` for the `streak`-th time in a row. */
export function retryDelay(code, streak, random = Math.random) {
  if (code === "rate_limited") return 1000;
  const ceiling = Math.min(10000, 500 * 2 ** Math.max(0, streak - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function randomClientId(random = Math.random) {
  let id = "c-";
  while (id.length < 18) id += Math.floor(random() * 36).toString(36);
  return id;
}

export class SyncClient {
  /**
   * @param {object} options
   * @param {Function} options.Delta  the quill-delta class
   * @param {string} [options.clientId]  8-64 characters, stable for the page's life
   * @param {number} [options.historyLimit]  committed edits kept to move old cursors forward
   * @param {Function} [options.now]  the clock, in milliseconds
   * @param {number} [options.ackTimeout]  ms an edit may go unanswered before `tick` reconnects
   */
  constructor({
    Delta,
    clientId = randomClientId(),
    send = () => {},
    apply = () => {},
    onChange = () => {},
    historyLimit = 500,
    now = () => Date.now(),
    random = Math.random,
    ackTimeout = 15000,
  }) {
    this.Delta = Delta;
    this.clientId = clientId;
    this.send = send;
    this.apply = apply;
    this.onChange = onChange;
    this.historyLimit = historyLimit;
    this.now = now;
    this.random = random;
    this.ackTimeout = ackTimeout;
    this.limits = DEFAULT_LIMITS;
    this.retryStreak = 0; // `unavailable` answers in a row

    this.version = null; // last committed version applied (null before the first join)
    this.doc = new Delta().insert("\n"); // the committed document at `version`
    this.inflight = null; // {seq, baseVersion, sent, delta, count, epoch, sentAt}
    this.buffer = null; // local edits composed, on top of inflight
    this.bufferCount = 0;
    this.nextSeq = 1;
    this.held = new Map(); // version -> committed op that arrived before its turn
    this.earlyAck = null; // {seq, version}: our ack ahead of the ops we hold
    this.fetchFrom = null; // `from` of the fetch we are waiting for
    this.joined = false;
    this.epoch = 0; // counts connections, to resend the in-flight edit once per connection
    this.resyncRequested = false;
    this.history = []; // [{version, delta}] committed edits, oldest first
    this.stallVersion = null;
    this.resyncs = 0; // resyncs since our last acknowledged edit
    this.stats = {
      remote: 0,
      acked: 0,
      duplicates: 0,
      fetches: 0,
      resends: 0,
      resets: 0,
      dropped: 0,
      timeouts: 0,
    };
  }

  // ---- observation ----------------------------------------------------------------------

  get state() {
    if (!this.inflight) return SyncState.SYNCHRONIZED;
    return this.buffer ? SyncState.AWAITING_WITH_BUFFER : SyncState.AWAITING_ACK;
  }

  /** Local edits (one per `localEdit` call) that the server has not acknowledged yet. */
  pendingCount() {
    return (this.inflight ? this.inflight.count : 0) + this.bufferCount;
  }

  /** Our unacknowledged changes as one delta on top of `doc`, or null. */
  pending() {
    const parts = [this.inflight && this.inflight.delta, this.buffer].filter(Boolean);
    if (parts.length === 0) return null;
    return parts.length === 1 ? parts[0] : parts[0].compose(parts[1]);
  }

  /** The document as the user sees it: the committed one plus our pending edits. */
  localDocument() {
    const pending = this.pending();
    return pending ? this.doc.compose(pending) : this.doc;
  }

  // ---- connection lifecycle -------------------------------------------------------------

  /** The `hello` for a freshly opened socket. */
  hello() {
    this.joined = false;
    this.fetchFrom = null;
    this.epoch += 1;
    const version = this.resyncRequested ? null : this.version;
    return { type: "hello", client_id: this.clientId, version };
  }

  /**
   * The socket closed: nothing is sent until the next `joined`. Held ops stay valid. A close
   * for a frame over the transport's limit (1009) drops the in-flight edit, which would only
   * be refused again; returns the hint for that, like `receive`, or null.
   */
  disconnected(code = null) {
    this.joined = false;
    this.fetchFrom = null;
    let hint = null;
    if (code === CLOSE_TOO_BIG && this.inflight) {
      this._dropInflight();
      hint = { action: "dropped", code: "too_large" };
    }
    this.onChange();
    return hint;
  }

  /** Ask for the whole document on the next `hello` (after an error that says so). */
  requestResync() {
    this.resyncRequested = true;
  }

  // ---- input from the editor ------------------------------------------------------------

  /** A change the user made (already applied in the editor). */
  localEdit(delta) {
    const change = delta instanceof this.Delta ? delta : new this.Delta(delta);
    if (change.ops.length === 0) return;
    this.buffer = this.buffer ? this.buffer.compose(change) : change;
    this.bufferCount += 1;
    this._flush();
    this.onChange();
  }

  // ---- input from the server ------------------------------------------------------------

  /** Dispatch one server message. Returns an action hint for the page, or null. */
  receive(message) {
    switch (message.type) {
      case "joined":
        this._joined(message);
        return null;
      case "ack":
        this._ack(message);
        return null;
      case "ops":
        this._receiveOps(message.ops || []);
        return null;
      case "error":
        return this._error(message);
      default:
        return null;
    }
  }

  /**
   * Called periodically by the page: re-asks for ops that seem lost, and returns
   * {action: "reconnect"} when the in-flight edit has waited `ackTimeout` for an answer
   * (a new connection resends it), else null.
   */
  tick() {
    const inflight = this.inflight;
    if (this.joined && inflight && inflight.sentAt !== null) {
      if (this.now() - inflight.sentAt >= this.ackTimeout) {
        this.stats.timeouts += 1;
        inflight.sentAt = null; // counted once; the resend on the next connection restarts it
        return { action: "reconnect" };
      }
    }
    const waiting = this.held.size > 0 || this.earlyAck !== null;
    if (!this.joined || !waiting) {
      this.stallVersion = null;
      return null;
    }
    if (this.stallVersion === this.version) this._requestFetch(true);
    this.stallVersion = this.version;
    return null;
  }

  /** Send the in-flight edit `seq` again (after a "retry-later" hint), if it still waits. */
  resendInflight(seq) {
    const inflight = this.inflight;
    if (this.joined && inflight && inflight.seq === seq && inflight.sentAt === null) {
      this._sendInflight();
    }
  }

  // ---- presence coordinates -------------------------------------------------------------

  /**
   * A range that refers to committed version `version`, moved to the local document (through
   * later committed edits and our pending ones). Null when it cannot be placed (yet).
   */
  rangeToLocal(range, version) {
    const current = this.rangeToCurrent(range, version);
    if (!current) return null;
    const pending = this.pending();
    if (!pending) return current;
    return moveRange(current, pending);
  }

  /** A range of committed version `version`, moved to the current committed version. */
  rangeToCurrent(range, version) {
    if (!range || this.version === null || version > this.version) return null;
    if (version === this.version) return { index: range.index, length: range.length };
    const first = this.history.length ? this.history[0].version : Infinity;
    if (version + 1 < first) return null;
    let moved = { index: range.index, length: range.length };
    for (const entry of this.history) {
      if (entry.version > version) moved = moveRange(moved, entry.delta);
    }
    return moved;
  }

  /** A range of the local document expressed on the committed document (for `presence`). */
  rangeToCommitted(range) {
    if (!range) return null;
    const pending = this.pending();
    if (!pending) return { index: range.index, length: range.length };
    return moveRange(range, pending.invert(this.doc));
  }

  // ---- internals ------------------------------------------------------------------------

  _joined(message) {
    this.joined = true;
    this.fetchFrom = null;
    if (message.limits) this.limits = { ...DEFAULT_LIMITS, ...message.limits };
    if (message.content) {
      this._resetTo(message.content, message.version, message.committed_seq);
    } else {
      this._receiveOps(message.ops || []);
      if (this.version !== null && this.version < message.version) this._requestFetch(true);
    }
    this.resyncRequested = false;
    if (this.inflight && this.inflight.epoch !== this.epoch) this._sendInflight();
    this._flush();
    this.onChange();
  }

  _ack(message) {
    const inflight = this.inflight;
    if (!inflight || message.seq !== inflight.seq) {
      this.stats.duplicates += 1; // an ack we already took from a fetch answer
      return;
    }
    if (message.version === this.version + 1) {
      this._acknowledge(message.version);
      this._drain();
    } else if (message.version > this.version + 1) {
      this.earlyAck = { seq: message.seq, version: message.version };
      this._drain();
    } else {
      // The server says this seq was committed long ago and did not apply it again, yet we
      // never saw it committed: only possible after a whole-document reset. What the user
      // sees (our edit rebased on that document) becomes a fresh edit, so all converge.
      this.buffer = this.buffer ? inflight.delta.compose(this.buffer) : inflight.delta;
      this.bufferCount += inflight.count;
      this.inflight = null;
      this.nextSeq = inflight.seq + 1;
      this._flush();
    }
    this.onChange();
  }

  _receiveOps(ops) {
    for (const op of ops) {
      if (this.version !== null && op.version <= this.version) {
        this.stats.duplicates += 1;
      } else if (!this.held.has(op.version)) {
        this.held.set(op.version, op);
      } else {
        this.stats.duplicates += 1;
      }
    }
    this._drain();
    this.onChange();
  }

  /** Apply held ops and early acks in version order; ask for what is missing. */
  _drain() {
    if (this.version === null) return; // not joined yet: keep everything for later
    for (;;) {
      const next = this.version + 1;
      const op = this.held.get(next);
      if (op) {
        this.held.delete(next);
        this._applyCommitted(op);
      } else if (this.earlyAck && this.inflight && this.earlyAck.version === next) {
        this._acknowledge(next);
      } else {
        break;
      }
    }
    for (const version of this.held.keys()) {
      if (version <= this.version) this.held.delete(version); // delivered twice meanwhile
    }
    if (this.earlyAck && (!this.inflight || this.earlyAck.version <= this.version)) {
      this.earlyAck = null;
    }
    if (this.held.size > 0) this._requestFetch(false);
  }

  _applyCommitted(op) {
    const inflight = this.inflight;
    if (inflight && op.client_id === this.clientId && op.seq === inflight.seq) {
      this._acknowledge(op.version); // our own edit, seen in a fetch or catch-up answer
      return;
    }
    const Delta = this.Delta;
    const remote = op.delta instanceof Delta ? op.delta : new Delta(op.delta);
    let forLocal = remote;
    if (inflight) {
      const rebased = forLocal.transform(inflight.delta, true);
      forLocal = inflight.delta.transform(forLocal, false);
      inflight.delta = rebased;
    }
    if (this.buffer) {
      const rebased = forLocal.transform(this.buffer, true);
      forLocal = this.buffer.transform(forLocal, false);
      this.buffer = rebased;
    }
    this.doc = this.doc.compose(remote);
    this.version = op.version;
    this._remember(op.version, remote);
    this.stats.remote += 1;
    this.apply(forLocal, { kind: "remote", op });
  }

  _acknowledge(version) {
    const inflight = this.inflight;
    this.doc = this.doc.compose(inflight.delta);
    this.version = version;
    this._remember(version, inflight.delta);
    this.inflight = null;
    this.earlyAck = null;
    this.resyncs = 0;
    this.retryStreak = 0;
    this.stats.acked += 1;
    this._flush();
  }

  _remember(version, delta) {
    this.history.push({ version, delta });
    if (this.history.length > this.historyLimit) this.history.shift();
  }

  _flush() {
    if (!this.joined || this.inflight || !this.buffer || this.version === null) return;
    // Only what fits one message goes; the rest stays buffered, to follow once this is acked.
    const { head, rest } = splitHead(this.Delta, this.buffer, deltaBudget(this.limits));
    this.inflight = {
      seq: this.nextSeq,
      baseVersion: this.version,
      sent: head,
      delta: head,
      count: rest ? 0 : this.bufferCount, // the local edits count as saved with their last part
      epoch: this.epoch,
      sentAt: null,
    };
    this.nextSeq += 1;
    this.buffer = rest;
    if (!rest) this.bufferCount = 0;
    this._sendInflight(false);
  }

  _sendInflight(isResend = true) {
    const inflight = this.inflight;
    inflight.epoch = this.epoch;
    inflight.sentAt = this.now();
    if (isResend) this.stats.resends += 1;
    // Unchanged on resend: same seq, same base version, same delta (protocol "submit").
    this.send({
      type: "submit",
      seq: inflight.seq,
      version: inflight.baseVersion,
      delta: inflight.sent.ops,
    });
  }

  _requestFetch(force) {
    if (!this.joined || this.version === null) return;
    if (!force && this.fetchFrom === this.version) return;
    this.fetchFrom = this.version;
    this.stats.fetches += 1;
    this.send({ type: "fetch", from: this.version });
  }

  /**
   * The server sent a whole document (fresh load, or the ops since our version are gone).
   * Pending edits cannot be rebased exactly; they are rebased over the difference between
   * the document we had and the new one, and submitted again. `committedSeq` is our last
   * edit the server has committed: an in-flight edit up to it is in `content` already (it
   * was committed, its ack lost), and is not submitted again.
   */
  _resetTo(contentOps, version, committedSeq = 0) {
    const Delta = this.Delta;
    const content = new Delta(contentOps);
    const committed =
      this.inflight &&
      ((this.earlyAck && this.earlyAck.seq === this.inflight.seq && this.earlyAck.version <= version) ||
        (committedSeq || 0) >= this.inflight.seq);
    if (committed) {
      // Our edit is known to be part of the new document already.
      this.doc = this.doc.compose(this.inflight.delta);
      this.nextSeq = Math.max(this.nextSeq, this.inflight.seq + 1);
      this.inflight = null;
    }
    const pending = this.pending();
    const count = this.pendingCount();
    const change = this.doc.diff(content);
    let forLocal = change;
    if (pending) {
      const rebased = change.transform(pending, true);
      forLocal = pending.transform(change, false);
      if (this.inflight) this.nextSeq = this.inflight.seq; // it was never committed
      this.inflight = null;
      this.buffer = rebased.ops.length ? rebased : null;
      this.bufferCount = this.buffer ? count : 0;
    }
    this.doc = content;
    this.version = version;
    this.earlyAck = null;
    this.history = [];
    for (const held of [...this.held.keys()]) if (held <= version) this.held.delete(held);
    this.stats.resets += 1;
    this.apply(forLocal, { kind: "reset" });
    this._drain();
  }

  _error(message) {
    const code = message.code;
    const concernsInflight =
      this.inflight && message.seq !== undefined && message.seq === this.inflight.seq;
    if (code === "not_joined") return { action: "reconnect" };
    if (code === "unavailable" && !this.joined && message.seq === undefined) {
      // The server could not open the document (its storage is down): join again later.
      this.retryStreak += 1;
      return { action: "reconnect-later", after: retryDelay(code, this.retryStreak, this.random), code };
    }
    if (code === "client_id_taken") {
      // Another user's id (we never had it committed): continue under a fresh one.
      this.clientId = randomClientId(this.random);
      this.nextSeq = 1;
      if (this.inflight) {
        this.inflight.seq = 1;
        this.nextSeq = 2;
      }
      return { action: "reconnect", code };
    }
    if (!concernsInflight) return null;
    if (RETRY_CODES.has(code)) {
      if (code === "unavailable") this.retryStreak += 1;
      this.inflight.sentAt = null; // not waiting for an answer until it is resent
      const after = retryDelay(code, this.retryStreak, this.random);
      return { action: "retry-later", seq: this.inflight.seq, after, code };
    }
    if (code === "read_only") {
      this._revertPending();
      return { action: "read-only", code };
    }
    if (DROP_CODES.has(code)) {
      this._dropInflight();
      return { action: "dropped", code };
    }
    if (RESYNC_CODES.has(code)) {
      this.resyncs += 1;
      if (this.resyncs > MAX_RESYNCS) {
        // Refused again after starting over: this edit will never fit; give it up.
        this.resyncs = 0;
        this._revertPending();
        return { action: "dropped", code };
      }
      if (code === "bad_sequence") {
        // Our numbering no longer matches the server's: continue as a new client, as a
        // reload would.
        this.clientId = randomClientId();
        this.nextSeq = 1;
        if (this.inflight) this.inflight.seq = 1;
      }
      this.requestResync();
      return { action: "resync", code };
    }
    return null;
  }

  /**
   * Undo the in-flight edit alone (the server refused it for good; nothing was committed):
   * its inverse, moved past the buffered edits, goes to the editor, and the buffer is rebased
   * as if the edit had never been made, then sent as usual. Its seq is used again.
   */
  _dropInflight() {
    const inflight = this.inflight;
    const inverse = inflight.delta.invert(this.doc);
    let forLocal = inverse;
    if (this.buffer) {
      // Both apply to doc∘inflight: the buffer's inverse-side transform pair.
      forLocal = this.buffer.transform(inverse, true);
      const rebased = inverse.transform(this.buffer, false).chop();
      this.buffer = rebased.ops.length ? rebased : null;
      if (!this.buffer) this.bufferCount = 0;
    }
    this.nextSeq = inflight.seq;
    this.inflight = null;
    this.earlyAck = null;
    this.retryStreak = 0;
    this.stats.dropped += 1;
    this.apply(forLocal, { kind: "revert" });
    this._flush();
    this.onChange();
  }

  /** Undo every pending edit locally (the server refused them; nothing was committed). */
  _revertPending() {
    const pending = this.pending();
    if (!pending) return;
    const inverse = pending.invert(this.doc);
    if (this.inflight) this.nextSeq = this.inflight.seq;
    this.inflight = null;
    this.buffer = null;
    this.bufferCount = 0;
    this.earlyAck = null;
    this.apply(inverse, { kind: "revert" });
    this.onChange();
  }
}

function moveRange(range, delta) {
  const start = delta.transformPosition(range.index);
  const end = delta.transformPosition(range.index + range.length);
  return { index: start, length: Math.max(0, end - start) };
}
