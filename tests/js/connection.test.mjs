// The reconnecting socket (static/js/connection.js) with a fake WebSocket and fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, Connection } from "../../static/js/connection.js";
import { EventChannel } from "../../static/js/event-channel.js";

class FakeClock {
  constructor() {
    this.time = 0;
    this.next = 1;
    this.tasks = new Map(); // id -> {at, fn, every}
  }
  now() {
    return this.time;
  }
  setTimeout(fn, ms) {
    const id = this.next++;
    this.tasks.set(id, { at: this.time + ms, fn, every: null });
    return id;
  }
  setInterval(fn, ms) {
    const id = this.next++;
    this.tasks.set(id, { at: this.time + ms, fn, every: ms });
    return id;
  }
  clearTimeout(id) {
    this.tasks.delete(id);
  }
  clearInterval(id) {
    this.tasks.delete(id);
  }
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      let dueId = null;
      let due = null;
      for (const [id, task] of this.tasks) {
        if (task.at <= end && (due === null || task.at < due.at)) [dueId, due] = [id, task];
      }
      if (!due) break;
      this.time = due.at;
      if (due.every) due.at += due.every;
      else this.tasks.delete(dueId);
      due.fn();
    }
    this.time = end;
  }
}

function setup(options = {}) {
  const clock = new FakeClock();
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      sockets.push(this);
    }
    send(data) {
      this.sent.push(JSON.parse(data));
    }
    close() {
      this.closed = true;
    }
    serverOpen() {
      this.onopen();
    }
    serverSend(message) {
      this.onmessage({ data: JSON.stringify(message) });
    }
    serverClose(code) {
      this.onclose({ code });
    }
  }
  const events = [];
  const connection = new Connection({
    url: "ws://test/ws/documents/1/",
    WebSocketImpl: FakeSocket,
    timers: clock,
    now: () => clock.now(),
    random: () => 0.5,
    onOpen: () => events.push("open"),
    onMessage: (message) => events.push(message.type),
    onClose: (info) => events.push(`close ${info.code} retry=${info.willRetry}`),
    ...options,
  });
  return { clock, sockets, events, connection, FakeSocket };
}

test("backoff: the first retry is quick, then doubles with jitter up to about 10 s", () => {
  assert.ok(backoffDelay(0, () => 1) <= 250);
  assert.ok(backoffDelay(0, () => 0) >= 125);
  const mid = [1, 2, 3, 4].map((attempt) => backoffDelay(attempt, () => 0.5));
  assert.deepEqual(mid, [750, 1500, 3000, 6000]);
  for (let attempt = 5; attempt < 40; attempt += 1) {
    assert.ok(backoffDelay(attempt, () => 1) <= 10000);
    assert.ok(backoffDelay(attempt, () => 0) >= 5000);
  }
});

test("a closed socket is reopened after the backoff; a joined resets the attempts", () => {
  const { clock, sockets, events, connection } = setup();
  connection.start();
  sockets[0].serverOpen();
  assert.equal(connection.send({ type: "hello" }), true);
  sockets[0].serverClose(1006);
  assert.equal(connection.send({ type: "x" }), false);
  clock.advance(200);
  assert.equal(sockets.length, 2, "first retry within 250 ms");
  sockets[1].serverClose(1006); // never opened
  clock.advance(700);
  assert.equal(sockets.length, 2);
  clock.advance(100);
  assert.equal(sockets.length, 3);
  sockets[2].serverOpen();
  sockets[2].serverSend({ type: "joined" });
  assert.equal(connection.attempt, 0);
  assert.deepEqual(events.slice(0, 3), ["open", "close 1006 retry=true", "close 1006 retry=true"]);
});

test("too many connections (4409) waits as long as flooding before the next try", () => {
  for (const code of [4409, 4429]) {
    const { clock, sockets, events, connection } = setup();
    connection.start();
    sockets[0].serverOpen();
    sockets[0].serverClose(code);
    clock.advance(5900);
    assert.equal(sockets.length, 1, `no quick retry after ${code}`);
    clock.advance(200);
    assert.equal(sockets.length, 2, "the fifth attempt's delay: 6 s");
    assert.deepEqual(events.slice(0, 2), ["open", `close ${code} retry=true`]);
  }
});

test("pings every 10 s and gives up on a socket silent for 25 s", () => {
  const { clock, sockets, connection } = setup();
  connection.start();
  sockets[0].serverOpen();
  clock.advance(10000);
  assert.deepEqual(sockets[0].sent, [{ type: "ping", id: 1 }]);
  sockets[0].serverSend({ type: "pong", id: 1 });
  clock.advance(24000);
  assert.equal(sockets.length, 1, "heard from it 24 s ago: alive");
  clock.advance(1000);
  clock.advance(300);
  assert.ok(sockets[0].closed);
  assert.equal(sockets.length, 2, "reconnected");
});

test("not signed in or no access: no reconnect", () => {
  const { clock, sockets, events, connection } = setup();
  connection.start();
  sockets[0].serverOpen();
  sockets[0].serverClose(4404);
  clock.advance(60000);
  assert.equal(sockets.length, 1);
  assert.equal(events.at(-1), "close 4404 retry=false");
});

test("a connect attempt that hangs is abandoned and retried", () => {
  const { clock, sockets, connection } = setup();
  connection.start();
  clock.advance(10000);
  assert.ok(sockets[0].closed);
  clock.advance(300);
  assert.equal(sockets.length, 2);
});

test("late events of an abandoned socket are ignored", () => {
  const { sockets, events, connection } = setup();
  connection.start();
  sockets[0].serverOpen();
  connection.reconnectNow();
  sockets[0].serverSend({ type: "ops" });
  assert.ok(!events.includes("ops"));
});

// -- the HTTP fallback -----------------------------------------------------------------

/** A connection whose WebSockets all fail unless `wsWorks()`, with a fake HTTP channel. */
function setupFallback() {
  const channels = [];
  const transports = [];
  class FakeChannel {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      channels.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.closed = true;
    }
    serverOpen() {
      this.onopen();
    }
    serverClose(code) {
      this.onclose({ code });
    }
  }
  const parts = setup({
    fallbackUrl: "/documents/1/live/",
    fallback: (url) => new FakeChannel(url),
    onTransport: (name) => transports.push(name),
    deadAfter: 1e9, // these tests are about transports, not heartbeats
  });
  return { ...parts, channels, transports };
}

/** Start a connection whose first two WebSockets never open: it tries the fallback. */
function failTwice({ clock, sockets, connection }) {
  connection.start();
  sockets[0].serverClose(1006);
  clock.advance(300);
  sockets[1].serverClose(1006);
  clock.advance(300);
}

test("two WebSockets that never open while HTTP answers: switch to the HTTP fallback", () => {
  const parts = setupFallback();
  const { clock, sockets, channels, transports, connection, events } = parts;
  failTwice(parts);
  assert.deepEqual(transports, ["http"]);
  assert.equal(connection.transport, "http");
  assert.equal(channels.length, 1, "the fallback is tried without the long backoff");
  assert.equal(channels[0].url, "/documents/1/live/");
  channels[0].serverOpen();
  assert.equal(connection.send({ type: "hello" }), true);
  assert.deepEqual(channels[0].sent, [{ type: "hello" }]);
  channels[0].onmessage({ data: JSON.stringify({ type: "joined" }) });
  assert.deepEqual(events.slice(-2), ["open", "joined"]);
  assert.equal(sockets.length, 3, "HTTP answers: is the WebSocket still failing now?");
  sockets[2].serverClose(1006);
  clock.advance(59000);
  assert.equal(connection.transport, "http", "it is: WebSockets are blocked, HTTP stays");
  assert.equal(channels[0].closed, false);
  assert.equal(sockets.length, 3, "no WebSocket while on the fallback until the next probe");
});

test("the network down (HTTP fails too): back to WebSockets, backing off, one when it returns", () => {
  const parts = setupFallback();
  const { clock, sockets, channels, transports, connection } = parts;
  failTwice(parts);
  channels[0].serverClose(1006); // the fallback never opened either
  assert.equal(connection.transport, "websocket");
  assert.deepEqual(transports, ["http", "websocket"]);
  clock.advance(1400);
  assert.equal(sockets.length, 2, "the backoff went on growing through the fallback's try");
  clock.advance(1600);
  assert.equal(sockets.length, 3, "a WebSocket next");
  // A long outage: every attempt fails, whichever transport, and the delays reach the cap.
  for (let i = 0; i < 20; i += 1) {
    (connection.transport === "http" ? channels : sockets).at(-1).serverClose(1006);
    clock.advance(10000);
  }
  assert.ok(channels.length >= 2 && sockets.length >= 10, "WebSockets mostly, HTTP now and then");
  if (connection.transport === "http") {
    channels.at(-1).serverClose(1006);
    clock.advance(10000);
  }
  // The network is back: the WebSocket opens, and the page stays on it.
  sockets.at(-1).serverOpen();
  sockets.at(-1).serverSend({ type: "joined" });
  assert.equal(connection.transport, "websocket");
  assert.equal(connection.send({ type: "hello" }), true);
  const counts = [sockets.length, channels.length];
  clock.advance(120000);
  assert.deepEqual([sockets.length, channels.length], counts, "no probes, no fallback");
  assert.equal(connection.transport, "websocket");
});

test("a fallback attempt that hangs (a blackholed network) also counts as HTTP failing", () => {
  const parts = setupFallback();
  const { clock, sockets, channels, connection } = parts;
  failTwice(parts);
  assert.equal(channels.length, 1);
  clock.advance(10000);
  assert.ok(channels[0].closed, "abandoned after the connect timeout");
  assert.equal(connection.transport, "websocket");
  clock.advance(10000);
  assert.equal(sockets.length, 3);
});

test("the network returns between the WebSocket's failure and the HTTP try: back to a WebSocket", () => {
  const parts = setupFallback();
  const { clock, sockets, channels, transports, connection } = parts;
  failTwice(parts);
  channels[0].serverOpen(); // the fallback opened: the network is back
  channels[0].onmessage({ data: JSON.stringify({ type: "joined" }) });
  assert.equal(sockets.length, 3, "a WebSocket is probed at once");
  sockets[2].serverOpen();
  assert.ok(sockets[2].closed, "the probe itself is closed");
  assert.deepEqual(transports, ["http", "websocket"]);
  assert.ok(channels[0].closed, "the fallback channel is dropped");
  clock.advance(250);
  assert.equal(sockets.length, 4, "and a real WebSocket opened");
  sockets[3].serverOpen();
  assert.equal(connection.send({ type: "hello" }), true);
  assert.deepEqual(sockets[3].sent, [{ type: "hello" }]);
  clock.advance(120000);
  assert.equal(sockets.length, 4);
  assert.equal(channels.length, 1);
});

test("a WebSocket that keeps dropping after it opened: fall back on the third drop", () => {
  const parts = setupFallback();
  const { clock, sockets, transports, connection } = parts;
  connection.start();
  for (let i = 0; i < 3; i += 1) {
    sockets[i].serverOpen();
    sockets[i].serverSend({ type: "joined" });
    clock.advance(5000);
    sockets[i].serverClose(1006);
    clock.advance(300);
  }
  assert.deepEqual(transports, ["http"]);
  parts.channels[0].serverOpen();
  assert.equal(sockets.length, 3, "not checked at once: a WebSocket that drops still opens");
});

test("outages do not add up to a fallback: two outages and a blip stay on WebSockets", () => {
  const parts = setupFallback();
  const { clock, sockets, transports, connection } = parts;
  connection.start();
  const rejoin = () => {
    sockets.at(-1).serverOpen();
    sockets.at(-1).serverSend({ type: "joined" });
  };
  rejoin();
  for (let outage = 0; outage < 2; outage += 1) {
    sockets.at(-1).serverClose(1006); // the network goes: the open WebSocket drops
    clock.advance(300);
    sockets.at(-1).serverClose(1006); // and the next cannot open
    clock.advance(1000);
    rejoin(); // it is back
    clock.advance(5000);
  }
  sockets.at(-1).serverClose(1006); // a blip, shorter than the first retry
  clock.advance(300);
  assert.deepEqual(transports, [], "three drops, but two were outages");
  assert.equal(parts.channels.length, 0);
  rejoin();
  assert.equal(connection.transport, "websocket");
  assert.equal(connection.send({ type: "hello" }), true);
});

test("the server's refusals (too many connections, flooding, protocol) are no drops", () => {
  for (const code of [4409, 4429, 4400]) {
    const parts = setupFallback();
    const { clock, sockets, transports, connection } = parts;
    connection.start();
    for (let i = 0; i < 4; i += 1) {
      sockets.at(-1).serverOpen();
      sockets.at(-1).serverSend({ type: "joined" });
      sockets.at(-1).serverClose(code); // the WebSocket works: the server answered over it
      clock.advance(10000);
    }
    assert.deepEqual(transports, [], `${code} is no reason to try HTTP`);
    assert.equal(parts.channels.length, 0);
    assert.equal(sockets.length, 5, "and each is followed by another WebSocket");
  }
});

test("drops far apart do not count as repeated; no fallback configured, none used", () => {
  const { clock, sockets, transports, connection } = setupFallback();
  connection.start();
  for (let i = 0; i < 4; i += 1) {
    sockets[i].serverOpen();
    sockets[i].serverSend({ type: "joined" });
    clock.advance(70000);
    sockets[i].serverClose(1006);
    clock.advance(1000);
  }
  assert.deepEqual(transports, []);
  const plain = setup();
  plain.connection.start();
  for (let i = 0; i < 5; i += 1) {
    plain.sockets[i].serverClose(1006);
    plain.clock.advance(20000);
  }
  assert.equal(plain.connection.transport, "websocket");
  assert.ok(plain.sockets.length >= 6, "kept retrying WebSockets");
});

test("on the fallback: probe for a WebSocket every minute and return when one opens", () => {
  const parts = setupFallback();
  const { clock, sockets, channels, transports, connection } = parts;
  failTwice(parts);
  channels[0].serverOpen();
  sockets[2].serverClose(1006); // the check at the fallback's opening: still blocked
  clock.advance(59000);
  assert.equal(sockets.length, 3);
  clock.advance(1000);
  assert.equal(sockets.length, 4, "a probe after a minute");
  sockets[3].serverClose(1006); // the probe failed: stay
  assert.equal(connection.transport, "http");
  assert.equal(channels[0].closed, false);
  clock.advance(60000);
  assert.equal(sockets.length, 5, "probe again");
  sockets[4].serverOpen();
  assert.ok(sockets[4].closed, "the probe itself is closed");
  assert.deepEqual(transports, ["http", "websocket"]);
  assert.ok(channels[0].closed, "the fallback channel is dropped");
  clock.advance(250);
  assert.equal(sockets.length, 6, "and a real WebSocket opened at once");
  sockets[5].serverOpen();
  assert.equal(connection.send({ type: "hello" }), true);
  assert.deepEqual(sockets[5].sent, [{ type: "hello" }]);
  clock.advance(120000);
  assert.equal(sockets.length, 6, "no probes on a WebSocket");
});

test("blocked WebSockets and then an outage on the fallback: back on HTTP once it is over", () => {
  const parts = setupFallback();
  const { clock, sockets, channels, connection } = parts;
  failTwice(parts);
  channels[0].serverOpen();
  channels[0].onmessage({ data: JSON.stringify({ type: "joined" }) });
  sockets[2].serverClose(1006); // blocked
  channels[0].serverClose(1006); // then the network goes
  clock.advance(1000);
  assert.equal(channels.length, 2, "the fallback is tried again first: it was working");
  channels[1].serverClose(1006); // down
  assert.equal(connection.transport, "websocket");
  for (let i = 0; i < 2; i += 1) {
    clock.advance(10000);
    sockets.at(-1).serverClose(1006); // blocked, or down
  }
  clock.advance(300);
  assert.equal(channels.length, 3, "WebSockets failed twice: HTTP again");
  channels[2].serverOpen(); // the network is back
  sockets.at(-1).serverClose(1006); // and WebSockets are still blocked
  clock.advance(30000);
  assert.equal(connection.transport, "http");
  assert.equal(channels[2].closed, false);
});

// -- EventChannel ------------------------------------------------------------------

function fakeHttp(responses = []) {
  const sources = [];
  const posts = [];
  class FakeEventSource {
    constructor(url) {
      this.url = url;
      this.closed = false;
      sources.push(this);
    }
    close() {
      this.closed = true;
    }
    emit(message) {
      this.onmessage({ data: JSON.stringify(message) });
    }
  }
  const fetchImpl = (url, init) =>
    new Promise((resolve, reject) => {
      posts.push({ url, init, resolve, reject });
      const canned = responses.shift();
      if (canned) resolve(canned);
    });
  return { sources, posts, FakeEventSource, fetchImpl };
}

function answer(status, body = null) {
  return { ok: status < 300, status, json: async () => body };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test("event channel: opens on the token, delivers events, POSTs lines in order", async () => {
  const { sources, posts, FakeEventSource, fetchImpl } = fakeHttp();
  const channel = new EventChannel("/documents/1/live/", { csrfToken: "tok", EventSourceImpl: FakeEventSource, fetchImpl });
  const got = [];
  channel.onopen = () => got.push("open");
  channel.onmessage = (event) => got.push(JSON.parse(event.data).type);
  assert.equal(sources[0].url, "/documents/1/live/events/");
  assert.throws(() => channel.send("{}"), /not open/);
  sources[0].emit({ type: "transport", token: "abc" });
  sources[0].emit({ type: "joined" });
  assert.deepEqual(got, ["open", "joined"]);
  channel.send('{"type":"hello"}');
  channel.send('{"type":"submit"}');
  channel.send('{"type":"ping"}');
  assert.equal(posts.length, 1, "one POST at a time");
  assert.equal(posts[0].url, "/documents/1/live/abc/");
  assert.equal(posts[0].init.method, "POST");
  assert.equal(posts[0].init.headers["X-CSRFToken"], "tok");
  assert.equal(posts[0].init.headers["X-Tandem-Post"], "1");
  assert.equal(posts[0].init.body, '{"type":"hello"}');
  posts[0].resolve(answer(204));
  await settle();
  assert.equal(posts.length, 2);
  assert.equal(posts[1].init.body, '{"type":"submit"}\n{"type":"ping"}', "what queued goes together");
  assert.equal(posts[1].init.headers["X-Tandem-Post"], "2");
});

test("event channel: server close, lost session, network failure and our own close", async () => {
  const closes = [];
  const make = (responses) => {
    const http = fakeHttp(responses);
    const channel = new EventChannel("/d/", { EventSourceImpl: http.FakeEventSource, fetchImpl: http.fetchImpl });
    channel.onclose = (event) => closes.push(event.code);
    http.sources[0].emit({ type: "transport", token: "t" });
    return { channel, ...http };
  };
  const a = make();
  a.sources[0].emit({ type: "close", code: 4408 });
  assert.ok(a.sources[0].closed);
  const b = make([answer(410, { code: "no_session" })]);
  b.channel.send("{}");
  await settle();
  const c = make([answer(403, { code: "not_authenticated" })]);
  c.channel.send("{}");
  await settle();
  const d = make();
  d.channel.send("{}");
  d.posts[0].reject(new Error("offline"));
  await settle();
  const e = make();
  e.sources[0].onerror();
  const f = make();
  f.channel.close();
  f.sources[0].emit({ type: "joined" });
  assert.deepEqual(closes, [4408, 4000, 4401, 1006, 1006]);
  assert.ok(f.sources[0].closed);
});
