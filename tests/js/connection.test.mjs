// The reconnecting socket (static/js/connection.js) with a fake WebSocket and fake clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, Connection } from "../../static/js/connection.js";

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

function setup() {
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
  });
  return { clock, sockets, events, connection };
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
