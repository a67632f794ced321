// Randomised multi-client runs of SyncClient against the simulated server over a faulty
// network: edits at random times, lost and duplicated broadcasts, acks overtaking
// broadcasts, dropped connections with resends. Every run must converge.
import assert from "node:assert/strict";
import { test } from "node:test";

import { FakeServer, makeClient, randomEdit, rng, wire } from "./helpers.mjs";

class Network {
  constructor(server, clientCount, random) {
    this.server = server;
    this.random = random;
    this.peers = [];
    for (let i = 0; i < clientCount; i += 1) {
      const harness = makeClient(`client-${i}-sim`);
      this.peers.push({ harness, toServer: [], toClient: [], online: false, joined: false });
    }
  }

  connect(peer) {
    peer.online = true;
    peer.joined = false;
    peer.toServer = [peer.harness.client.hello()];
    peer.toClient = [];
  }

  disconnect(peer) {
    peer.online = false;
    peer.joined = false;
    peer.toServer = [];
    peer.toClient = [];
    peer.harness.client.disconnected();
  }

  /** Move what the client sent into its outbound queue. */
  collect(peer) {
    const sent = peer.harness.take();
    if (peer.online) peer.toServer.push(...sent);
  }

  serverStep(peer) {
    const message = peer.toServer.shift();
    const id = peer.harness.client.clientId;
    if (message.type === "hello") {
      peer.joined = true;
      peer.toClient.push(this.server.joined(message.version));
    } else if (message.type === "fetch") {
      peer.toClient.push({ type: "ops", ops: this.server.opsAfter(message.from) });
    } else if (message.type === "submit") {
      const result = this.server.submit(id, message);
      if (result.error) throw new Error(`server refused: ${JSON.stringify(result.error)}`);
      peer.toClient.push(result.ack);
      if (result.op) {
        for (const other of this.peers) {
          if (other !== peer && other.joined) {
            other.toClient.push({ type: "ops", ops: [wire(result.op)] });
          }
        }
      }
    }
  }

  clientStep(peer) {
    const queue = peer.toClient;
    const r = this.random();
    if (queue.length > 1 && r < 0.15 && queue[0].type !== "joined" && queue[1].type !== "joined") {
      [queue[0], queue[1]] = [queue[1], queue[0]]; // reordering (ack overtakes ops and so on)
    }
    const message = queue.shift();
    if (message.type === "ops" && r > 0.95) return; // lost broadcast: a gap
    peer.harness.client.receive(message);
    if (message.type === "ops" && r > 0.9) peer.harness.client.receive(message); // twice
  }

  step() {
    const r = this.random();
    const peer = this.peers[Math.floor(this.random() * this.peers.length)];
    const h = peer.harness;
    if (r < 0.3) {
      h.edit(randomEdit(h.editor, this.random).ops);
    } else if (r < 0.55) {
      if (peer.toServer.length) this.serverStep(peer);
    } else if (r < 0.85) {
      if (peer.toClient.length) this.clientStep(peer);
    } else if (r < 0.9) {
      h.client.tick();
    } else if (r < 0.93) {
      if (peer.online) this.disconnect(peer);
      else this.connect(peer);
    } else if (!peer.online && r < 0.97) {
      this.connect(peer);
    }
    this.collect(peer);
    // What the editor shows is always the committed document plus our pending edits.
    const { editor, client } = peer.harness;
    if (JSON.stringify(editor.ops) !== JSON.stringify(client.localDocument().ops)) {
      assert.deepEqual(editor, client.localDocument(), `${client.clientId}: editor != model`);
    }
  }

  /** Reconnect everybody and deliver everything, reliably, until nothing moves. */
  settle() {
    for (const peer of this.peers) if (!peer.online) this.connect(peer);
    for (let round = 0; round < 10000; round += 1) {
      let moved = false;
      for (const peer of this.peers) {
        while (peer.toServer.length) {
          this.serverStep(peer);
          moved = true;
        }
        while (peer.toClient.length) {
          peer.harness.client.receive(peer.toClient.shift());
          moved = true;
        }
        peer.harness.client.tick();
        this.collect(peer);
        if (peer.toServer.length) moved = true;
      }
      if (!moved) return;
    }
    throw new Error("did not settle");
  }
}

function run(seed, { clients = 3, steps = 400, content } = {}) {
  const random = rng(seed);
  const server = new FakeServer(content);
  const net = new Network(server, clients, random);
  for (const peer of net.peers) {
    net.connect(peer);
    net.serverStep(peer);
    net.clientStep(peer);
  }
  for (let i = 0; i < steps; i += 1) net.step();
  net.settle();
  for (const peer of net.peers) {
    const { client, editor } = peer.harness;
    assert.equal(client.pendingCount(), 0, `seed ${seed}: ${client.clientId} has pending edits`);
    assert.equal(client.version, server.version, `seed ${seed}: ${client.clientId} is behind`);
    assert.deepEqual(editor, server.doc, `seed ${seed}: ${client.clientId} diverged`);
  }
  return { server, stats: net.peers.map((peer) => peer.harness.client.stats) };
}

function total(results, key) {
  return results.flatMap((result) => result.stats).reduce((sum, stats) => sum + stats[key], 0);
}

test("two clients typing at the same time converge (30 seeds)", () => {
  for (let seed = 1; seed <= 30; seed += 1) run(seed, { clients: 2, steps: 300 });
});

test("four clients with drops, gaps and reconnects converge (15 seeds)", () => {
  const results = [];
  for (let seed = 100; seed < 115; seed += 1) {
    results.push(run(seed, { clients: 4, steps: 600, content: [{ insert: "Start here\n" }] }));
  }
  const committed = results.reduce((sum, result) => sum + result.server.version, 0);
  assert.ok(committed > 300, `the runs committed real work (${committed} edits)`);
  // The faults really happened: gaps were fetched, edits resent, duplicates dropped.
  for (const key of ["fetches", "resends", "duplicates", "remote", "acked"]) {
    assert.ok(total(results, key) > 0, `no ${key} in the runs`);
  }
});
