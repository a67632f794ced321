"""Ack and remote latency of the real-time engine, through real daphne and real WebSockets.

Starts daphne (pinned to core 0 when `taskset` exists) on a fresh database, opens N clients
on one document from this process (core 1), and has each type single characters at a fixed
rate. Measures submit -> ack, and submit -> receipt by every other client.

    python bench/ack_latency.py                       # SQLite + in-memory layer
    python bench/ack_latency.py --services            # PostgreSQL + Redis (local defaults)
    python bench/ack_latency.py --clients 10 --rate 5 --seconds 10
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.collab.wsclient import session_cookie  # noqa: E402
from tests.live_server import (  # noqa: E402
    DaphneServer,
    create_documents,
    create_users,
    manage,
    sqlite_database,
)


def percentiles(samples):
    if not samples:
        return "no samples"
    ordered = sorted(samples)

    def at(fraction):
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return (
        f"p50 {at(0.50):6.2f} ms  p90 {at(0.90):6.2f} ms  p99 {at(0.99):6.2f} ms  "
        f"max {ordered[-1] * 1000:6.2f} ms  (n={len(ordered)})"
    )


class Typist:
    """Types one character at a time, at most one edit in flight, as the protocol asks."""

    def __init__(self, name, url, origin, cookie, sent, remote, acks):
        self.name, self.url, self.origin, self.cookie = name, url, origin, cookie
        self.sent, self.remote, self.acks = sent, remote, acks
        self.version = None
        self.seq = 0
        self.waiting = False
        self.skipped = 0

    async def run(self, rate, seconds, start):
        async with websockets.connect(
            self.url, origin=self.origin, additional_headers={"Cookie": f"sessionid={self.cookie}"}
        ) as socket:
            hello = {"type": "hello", "client_id": self.name, "version": None}
            await socket.send(json.dumps(hello))
            reader = asyncio.create_task(self.read(socket))
            while self.version is None:
                await asyncio.sleep(0.01)
            await start.wait()
            interval = 1 / rate
            next_at = time.perf_counter()
            stop = next_at + seconds
            while next_at < stop:
                await asyncio.sleep(max(0, next_at - time.perf_counter()))
                next_at += interval
                if self.waiting:
                    self.skipped += 1  # open loop: a tick with an edit in flight is lost
                    continue
                self.seq += 1
                self.waiting = True
                self.sent[(self.name, self.seq)] = time.perf_counter()
                await socket.send(json.dumps({"type": "submit", "seq": self.seq,
                                              "version": self.version,
                                              "delta": [{"insert": "x"}]}))  # fmt: skip
            await asyncio.sleep(1.0)
            reader.cancel()

    async def read(self, socket):
        async for text in socket:
            now = time.perf_counter()
            message = json.loads(text)
            kind = message["type"]
            if kind == "joined":
                self.version = message["version"]
            elif kind == "ack":
                self.acked(message["seq"], message["version"], now)
            elif kind == "ops":
                for op in message["ops"]:
                    if op["client_id"] == self.name:  # our edit in a batch: the ack
                        self.acked(op["seq"], op["version"], now)
                        continue
                    self.version = max(self.version, op["version"])
                    started = self.sent.get((op["client_id"], op["seq"]))
                    if started is not None:
                        self.remote.append(now - started)

    def acked(self, seq, version, now):
        self.acks.append(now - self.sent[(self.name, seq)])
        self.version = max(self.version, version)
        self.waiting = False


async def measure(server, document, cookie, clients, rate, seconds):
    sent, remote, acks = {}, [], []
    url = f"{server.ws_url}/ws/documents/{document}/"
    start = asyncio.Event()
    typists = [
        Typist(f"bench-{uuid.uuid4().hex[:10]}", url, server.url, cookie, sent, remote, acks)
        for _ in range(clients)
    ]
    tasks = [asyncio.create_task(t.run(rate, seconds, start)) for t in typists]
    while any(t.version is None for t in typists):
        await asyncio.sleep(0.01)
    cpu_before = time.process_time()
    start.set()
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu_before
    return acks, remote, len(sent), sum(t.skipped for t in typists), cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5, help="edits per second per client")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--services", action="store_true", help="PostgreSQL + Redis")
    args = parser.parse_args()

    if args.services:
        import psycopg

        name = f"tandem_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/test", autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        env = {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
            "REDIS_URL": "redis://127.0.0.1:6379/6",
        }
        manage("migrate", "--noinput", env=env)
        setup = "PostgreSQL + Redis"
    else:
        env = {"DATABASE_URL": sqlite_database()}
        setup = "SQLite + in-memory layer"
    env["TANDEM_LOG_LEVEL"] = "WARNING"
    env["TANDEM_RATE_LIMIT_PER_SECOND"] = "1000"
    create_users({"bench": "bench-password-1"}, env=env)
    document = create_documents("bench", ["Bench"], env=env)["Bench"]
    cookie = session_cookie("bench", env)

    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    server = DaphneServer(env=env)
    if pinned:
        os.sched_setaffinity(0, {1})
    server.start()
    if pinned:
        os.sched_setaffinity(server.process.pid, {0})
    try:
        acks, remote, edits, skipped, client_cpu = asyncio.run(
            measure(server, document, cookie, args.clients, args.rate, args.seconds)
        )
    finally:
        server.stop()
    print(f"setup: daphne, {setup}; server pinned to core 0: {pinned}")
    print(f"{args.clients} clients x {args.rate:g} edits/s for {args.seconds:g} s: "
          f"{edits} edits sent, {skipped} ticks skipped while an edit was in flight")  # fmt: skip
    print(f"ack    latency: {percentiles(acks)}")
    print(f"remote latency: {percentiles(remote)}")
    expected = edits * (args.clients - 1)
    print(f"delivered to other clients: {len(remote)}/{expected}")
    print(f"load generator CPU: {client_cpu:.2f} s; mean ack {statistics.mean(acks) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
