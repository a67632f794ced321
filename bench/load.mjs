// Load generator of bench/load.py: many WebSocket clients of the real protocol in one process.
//
//   node bench/load.mjs CONFIG.json      (normally started by bench/load.py, pinned to core 1)
//
// CONFIG: {mode: "type"|"idle"|"connect"|"open", clients: [{url, origin, cookie, group}],
//          rate (keystrokes/s per client), seconds, drainSeconds, connectAtOnce, holdSeconds,
//          trials}.  Clients with the same `group` share one document.
//
// Prints one JSON object per line: {"event": "joined"|"start"|"stop"|"idle"|"result", ...}.
// The orchestrator samples the server's CPU and memory at those events.
//
// Each typing client behaves like the browser client (static/js/sync.js): at most one edit
// in flight, keystrokes typed meanwhile composed into a buffer that is sent on the ack,
// incoming ops transformed against the in-flight and buffered deltas (bench/text-ot.mjs, the
// results of quill-delta without its cloning), ops and
// early acks applied strictly in version order. The document itself is kept as a chunked
// string so that applying an op costs O(chunk), not O(document).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

import { plain, transform } from './text-ot.mjs';

const require = createRequire(import.meta.url);
const Delta = require('quill-delta');
const WebSocket = require('ws');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const CHUNK = 1024;

function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

const now = () => performance.now();

// The clients of a document all receive the same broadcast frames: each distinct frame is
// parsed once, which keeps the generator well below its core with 100 clients on a document.
// The parsed messages are shared, so the handlers only read them.
const parsedFrames = [];
function parseShared(data) {
  for (const entry of parsedFrames) {
    if (entry.data.equals(data)) return entry.message;
  }
  const message = JSON.parse(data);
  if (message.type === 'ops') {
    parsedFrames.unshift({ data, message });
    if (parsedFrames.length > 8) parsedFrames.pop();
  }
  return message;
}

// One process plays every client, so a frame broadcast to 100 of them is read from 100
// sockets in one turn of the loop. Each is timed as it is read and handled after all of them:
// handled at once, the hundredth would be timed after the other 99 had applied their ops,
// which a person's own browser never waits for.
let inbox = [];
function arrived(client, data) {
  if (!inbox.length) setImmediate(handleInbox);
  inbox.push(client, data, now());
}
function handleInbox() {
  const frames = inbox;
  inbox = [];
  for (let i = 0; i < frames.length; i += 3) frames[i].receive(frames[i + 1], frames[i + 2]);
}

/** A plain-text document as a list of string chunks: insert and delete cost O(chunk). */
class Text {
  constructor(text) {
    this.chunks = [];
    for (let i = 0; i < text.length; i += CHUNK) this.chunks.push(text.slice(i, i + CHUNK));
    if (!this.chunks.length) this.chunks.push('');
    this.length = text.length;
  }

  locate(pos) {
    let i = 0;
    while (i < this.chunks.length - 1 && pos > this.chunks[i].length) {
      pos -= this.chunks[i].length;
      i += 1;
    }
    return [i, pos];
  }

  insert(pos, text) {
    const [i, at] = this.locate(pos);
    const chunk = this.chunks[i];
    const joined = chunk.slice(0, at) + text + chunk.slice(at);
    if (joined.length > 2 * CHUNK) {
      const half = joined.length >> 1;
      this.chunks.splice(i, 1, joined.slice(0, half), joined.slice(half));
    } else {
      this.chunks[i] = joined;
    }
    this.length += text.length;
  }

  delete(pos, count) {
    const text = this.toString();
    const rest = new Text(text.slice(0, pos) + text.slice(pos + count));
    this.chunks = rest.chunks;
    this.length = rest.length;
  }

  /** Apply a delta of retains, inserts and deletes (attributes are not kept). */
  apply(ops) {
    let pos = 0;
    for (const op of ops) {
      if (op.retain !== undefined) pos += op.retain;
      else if (op.delete !== undefined) this.delete(pos, op.delete);
      else if (typeof op.insert === 'string') {
        this.insert(pos, op.insert);
        pos += op.insert.length;
      } else {
        this.insert(pos, '\u0000'); // an embed counts one
        pos += 1;
      }
    }
  }

  toString() {
    return this.chunks.join('');
  }
}

function plainText(ops) {
  return ops.map((op) => (typeof op.insert === 'string' ? op.insert : '\u0000')).join('');
}

// ---- measurements shared by all clients --------------------------------------------------

const stats = {
  typed: 0,
  acked: 0,
  ackedInWindow: 0,
  delivered: 0,
  deliveredInWindow: 0,
  ackLatency: [],
  remoteLatency: [],
  errors: {},
  closes: {},
  gaps: 0,
  connectFailures: 0,
};
// `${clientId}:${seq}` -> {times: keystroke times, remaining: receivers still to see it}
const pending = new Map();
let windowStart = Infinity;
let windowEnd = Infinity;
let stopping = false;
let lastMessageAt = 0;

function count(table, key) {
  table[key] = (table[key] || 0) + 1;
}

class Client {
  constructor(index, spec) {
    this.index = index;
    this.spec = spec;
    this.id = `load-${index}-${Math.random().toString(36).slice(2, 10)}`;
    this.peers = 0; // other typing clients of the same document
    this.socket = null;
    this.version = null;
    this.text = null;
    this.seq = 0;
    this.inflight = null; // Delta sent and not acknowledged
    this.inflightSeq = 0;
    this.buffer = null; // Delta typed while an edit is in flight
    this.bufferTimes = [];
    this.held = new Map(); // version -> op that arrived before its turn
    this.earlyAck = null;
    this.fetching = false;
    this.joinedAt = null;
    this.typedHere = 0;
  }

  connect() {
    return new Promise((resolve) => {
      const started = now();
      const socket = new WebSocket(this.spec.url, {
        headers: { Cookie: `sessionid=${this.spec.cookie}` },
        origin: this.spec.origin,
        perMessageDeflate: false,
        maxPayload: 64 * 1024 * 1024,
      });
      this.socket = socket;
      this.onJoined = () => resolve({ ok: true, ms: now() - started });
      socket.on('open', () => {
        this.openedMs = now() - started;
        this.send({ type: 'hello', client_id: this.id, version: null });
      });
      socket.on('message', (data) => arrived(this, data));
      socket.on('error', (error) => {
        count(stats.errors, `socket: ${error.code || error.message}`);
      });
      socket.on('close', (code) => {
        this.socket = null;
        clearInterval(this.pinger);
        if (!stopping) count(stats.closes, String(code));
        if (this.version === null) {
          stats.connectFailures += 1;
          resolve({ ok: false, ms: now() - started });
        }
      });
    });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  receive(data, at) {
    const message = parseShared(data);
    if (message.type !== 'pong') lastMessageAt = at;
    switch (message.type) {
      case 'joined':
        this.version = message.version;
        this.contentLength = message.content ? message.content.length : 0;
        this.text = new Text(plainText(message.content || []));
        this.joinedAt = at;
        // Heartbeat from the join on: the server drops a socket silent for 25 s.
        this.pinger = setInterval(() => this.send({ type: 'ping', id: 1 }), 10000);
        this.onJoined();
        break;
      case 'ack':
        this.ack(message, at);
        break;
      case 'ops':
        this.ops(message.ops, at);
        break;
      case 'pong':
        if (
          message.version !== null &&
          message.version > this.version &&
          !this.inflight &&
          !this.held.size
        ) {
          stats.gaps += 1; // a lost broadcast
          this.fetch();
        }
        break;
      case 'error':
        count(stats.errors, message.code);
        break;
      default:
        break; // presence, leave, title, lock
    }
  }

  // ---- typing ---------------------------------------------------------------------------

  type(at) {
    if (this.text === null) {
      // Its socket never joined: the keystroke is owed and never acked, so the step fails.
      stats.typed += 1;
      count(stats.errors, 'typed before joining');
      return;
    }
    const pos = Math.floor(Math.random() * this.text.length); // before the final newline
    const letter = LETTERS[Math.floor(Math.random() * 26)];
    const delta = new Delta().retain(pos).insert(letter);
    this.text.insert(pos, letter);
    stats.typed += 1;
    this.typedHere += 1;
    this.buffer = this.buffer ? this.buffer.compose(delta) : delta;
    this.bufferTimes.push(at);
    if (!this.inflight) this.flush();
  }

  flush() {
    if (!this.buffer || this.inflight) return;
    this.inflight = this.buffer;
    this.seq += 1;
    this.inflightSeq = this.seq;
    if (this.peers > 0) {
      pending.set(`${this.id}:${this.seq}`, { times: this.bufferTimes, remaining: this.peers });
    }
    this.inflightTimes = this.bufferTimes;
    this.buffer = null;
    this.bufferTimes = [];
    this.send({ type: 'submit', seq: this.seq, version: this.version, delta: this.inflight.ops });
  }

  ack(message, at) {
    if (!this.inflight || message.seq !== this.inflightSeq) return;
    this.ackedAt(at);
    if (message.version === this.version + 1) this.acknowledge(message.version);
    else if (message.version > this.version + 1) {
      this.earlyAck = { seq: message.seq, version: message.version };
    }
  }

  // The ack arrives as an `ack` or as our own edit inside an `ops` message (a batch).
  ackedAt(at) {
    if (this.inflightAckedAt) return;
    this.inflightAckedAt = at;
    for (const t of this.inflightTimes) stats.ackLatency.push(at - t);
    stats.acked += this.inflightTimes.length;
    if (at >= windowStart && at <= windowEnd) stats.ackedInWindow += this.inflightTimes.length;
  }

  acknowledge(version) {
    this.version = version;
    this.inflight = null;
    this.inflightAckedAt = null;
    this.earlyAck = null;
    this.drain();
    this.flush();
  }

  // ---- committed ops, in version order --------------------------------------------------

  ops(ops, at) {
    for (const op of ops) {
      if (op.version <= this.version || this.held.has(op.version)) continue;
      this.held.set(op.version, op);
      if (op.client_id === this.id) {
        if (this.inflight && op.seq === this.inflightSeq) this.ackedAt(at);
        continue;
      }
      const entry = pending.get(`${op.client_id}:${op.seq}`);
      if (entry) {
        for (const t of entry.times) stats.remoteLatency.push(at - t);
        stats.delivered += entry.times.length;
        if (at <= windowEnd) stats.deliveredInWindow += entry.times.length;
        entry.remaining -= 1;
        if (entry.remaining <= 0) pending.delete(`${op.client_id}:${op.seq}`);
      }
    }
    this.drain();
  }

  drain() {
    for (;;) {
      const next = this.version + 1;
      const op = this.held.get(next);
      if (op) {
        this.held.delete(next);
        this.apply(op);
      } else if (this.earlyAck && this.earlyAck.version === next) {
        this.acknowledge(next);
        return;
      } else {
        break;
      }
    }
    if (this.held.size && !this.fetching) {
      stats.gaps += 1;
      this.fetch();
    }
  }

  fetch() {
    this.fetching = true;
    this.send({ type: 'fetch', from: this.version });
    setTimeout(() => {
      this.fetching = false;
    }, 500);
  }

  apply(op) {
    if (op.client_id === this.id) {
      // Our own edit, seen in a fetch answer: it is the acknowledgement.
      if (this.inflight && op.seq === this.inflightSeq) {
        this.acknowledge(op.version);
      } else {
        this.version = op.version;
      }
      return;
    }
    let ops = op.delta;
    const fast = plain(ops);
    for (const pending of ['inflight', 'buffer']) {
      const mine = this[pending];
      if (!mine) continue;
      if (fast) {
        this[pending] = new Delta(transform(ops, mine.ops, true));
        ops = transform(mine.ops, ops, false);
      } else {
        const theirs = new Delta(ops);
        this[pending] = theirs.transform(mine, true);
        ops = mine.transform(theirs, false).ops;
      }
    }
    this.text.apply(ops);
    this.version = op.version;
  }

  get settled() {
    return !this.inflight && !this.buffer && !this.held.size;
  }

  digest() {
    const text = this.text ? this.text.toString() : '';
    return {
      group: this.spec.group,
      version: this.version,
      length: text.length,
      sha: createHash('sha256').update(text, 'utf8').digest('hex'),
    };
  }
}

// ---- phases ------------------------------------------------------------------------------

async function connectAll(clients, atOnce) {
  const started = now();
  const results = new Array(clients.length);
  let next = 0;
  async function worker() {
    while (next < clients.length) {
      const i = next;
      next += 1;
      results[i] = await clients[i].connect();
    }
  }
  await Promise.all(Array.from({ length: Math.min(atOnce, clients.length) }, worker));
  const times = results.map((r) => r.ms);
  return {
    seconds: (now() - started) / 1000,
    joined: results.filter((r) => r.ok).length,
    joinMs: summary(times),
  };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function typeFor(clients, rate, seconds) {
  return new Promise((resolve) => {
    const start = now() + 50;
    windowStart = start;
    windowEnd = start + seconds * 1000;
    const interval = 1000 / rate;
    let running = clients.length;
    const lags = [];
    for (const [i, client] of clients.entries()) {
      // Phases spread evenly, so the window holds rate x seconds keystrokes at any rate.
      const phase = ((i + 0.5) / clients.length) * interval;
      let due = 0; // keystrokes this client owed so far
      const tick = () => {
        const t = now();
        const end = Math.min(t, windowEnd);
        const owed = Math.floor((end - start - phase) / interval) + 1;
        if (owed > due) {
          const first = start + phase + due * interval;
          lags.push(t - first);
          for (; due < owed; due += 1) client.type(t);
        }
        if (t >= windowEnd) {
          running -= 1;
          if (!running) resolve(lags);
          return;
        }
        const wait = Math.min(start + phase + due * interval, windowEnd) - now();
        setTimeout(tick, Math.max(0, wait));
      };
      setTimeout(tick, Math.max(0, Math.min(start + phase, windowEnd) - now()));
    }
  });
}

async function settle(clients, seconds) {
  const deadline = now() + seconds * 1000;
  while (now() < deadline) {
    if (pending.size === 0 && clients.every((c) => c.settled || !c.socket)) return true;
    await sleep(20);
  }
  return false;
}

function summary(samples) {
  if (!samples.length) return null;
  const sorted = Float64Array.from(samples).sort();
  const at = (f) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))];
  return {
    n: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1],
  };
}

async function closeAll(clients) {
  stopping = true;
  for (const client of clients) clearInterval(client.pinger);
  for (const client of clients) if (client.socket) client.socket.close(1000);
  await sleep(200);
  for (const client of clients) if (client.socket) client.socket.terminate();
}

async function runTyping(clients) {
  const groups = new Map();
  for (const c of clients) groups.set(c.spec.group, (groups.get(c.spec.group) || 0) + 1);
  for (const c of clients) c.peers = groups.get(c.spec.group) - 1;
  const connect = await connectAll(clients, config.connectAtOnce || 100);
  // Start typing once the joins' presence fan-out is over (no frame for 500 ms).
  const quietFrom = now();
  while (now() - lastMessageAt < 500 && now() - quietFrom < 60000) await sleep(50);
  connect.quietSeconds = (now() - quietFrom) / 1000;
  emit('joined', connect);
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  const cpu = process.cpuUsage();
  const typingFrom = now();
  loopDelay.enable();
  emit('start');
  const lags = await typeFor(clients, config.rate, config.seconds);
  const used = process.cpuUsage(cpu);
  const typingSeconds = (now() - typingFrom) / 1000;
  loopDelay.disable();
  emit('stop');
  const settled = await settle(clients, config.drainSeconds);
  const digests = clients.map((c) => c.digest());
  await closeAll(clients);
  return {
    connect,
    settled,
    offered: config.rate * clients.length,
    achieved: stats.ackedInWindow / config.seconds,
    typed: stats.typed,
    acked: stats.acked,
    expectedDeliveries: clients.reduce((n, c) => n + c.typedHere * c.peers, 0),
    delivered: stats.delivered,
    deliveredInWindow: stats.deliveredInWindow,
    ack: summary(stats.ackLatency),
    remote: summary(stats.remoteLatency),
    generatorCpu: (used.user + used.system) / 1e6 / typingSeconds,
    scheduleLagMs: summary(lags),
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    errors: stats.errors,
    closes: stats.closes,
    gaps: stats.gaps,
    digests,
  };
}

async function runIdle(clients) {
  const connect = await connectAll(clients, config.connectAtOnce || 200);
  emit('joined', connect);
  await sleep(config.holdSeconds * 1000);
  const open = clients.filter((c) => c.socket).length;
  emit('idle', { open });
  await sleep(1000);
  await closeAll(clients);
  return { connect, open, errors: stats.errors, closes: stats.closes };
}

async function runConnect(clients) {
  const connect = await connectAll(clients, clients.length);
  emit('joined', connect);
  await sleep(1000);
  const open = clients.filter((c) => c.socket).length;
  await closeAll(clients);
  return { connect, open, errors: stats.errors, closes: stats.closes };
}

async function runOpen(specs) {
  const trials = [];
  for (let i = 0; i < config.trials; i += 1) {
    const client = new Client(i, specs[0]);
    const result = await client.connect();
    trials.push({
      ok: result.ok,
      firstContentMs: result.ms,
      openMs: client.openedMs,
      contentOps: client.contentLength,
      ...client.digest(),
    });
    stopping = true;
    client.socket?.close(1000);
    await sleep(config.pauseMs ?? 300);
    stopping = false;
  }
  return { trials, errors: stats.errors, closes: stats.closes };
}

const clients = config.clients.map((spec, i) => new Client(i, spec));
const runners = { type: runTyping, idle: runIdle, connect: runConnect, open: runOpen };
const result = await runners[config.mode](config.mode === 'open' ? config.clients : clients);
// Exit only once the (possibly large) result has left through the pipe.
process.stdout.write(`${JSON.stringify({ event: 'result', ...result })}\n`, () => process.exit(0));
