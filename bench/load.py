"""Load benchmark of the real-time engine (issue #6): real daphne, real WebSockets, many clients.

The server runs pinned to core 0 (`taskset -c 0`); the clients run in one Node process
(`bench/load.mjs`, `ws` + `quill-delta`) pinned to core 1. Each scenario gets fresh documents
in a fresh database; every typing run ends with a convergence check (all clients of a
document and the database hold the same text).

    .venv/bin/python bench/load.py                         # every scenario, every config
    .venv/bin/python bench/load.py --quick                 # shorter steps, fewer of them
    .venv/bin/python bench/load.py --scenario 10x1 --config embedded
    .venv/bin/python bench/load.py --list

Configs: `embedded` (SQLite + in-memory layer, one daphne), `services` (PostgreSQL + Redis,
one daphne), `two-processes` (PostgreSQL + Redis, two daphnes on cores 0 and 1, clients
split between them; the generator is then not pinned). PostgreSQL is expected at
postgres://postgres@127.0.0.1:5432 (a `tandem_bench` database is dropped and re-created),
Redis at redis://127.0.0.1:6379/5 (flushed). Prints a Markdown table at the end.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calibrate import describe  # noqa: E402
from tests.live_server import (  # noqa: E402
    DaphneServer,
    manage,
    run_python,
    sqlite_database,
)

GENERATOR = ROOT / "bench" / "load.mjs"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/5"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PINNED = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2

# Hold criteria of a typing step.
MIN_ACHIEVED = 0.95
MAX_REMOTE_P99_MS = 50.0
# Steps of a sweep spent between the last rate that held and the first that failed.
REFINE_STEPS = 2


def log(text):
    print(text, file=sys.stderr, flush=True)


# ---- servers -----------------------------------------------------------------------------


class Server(DaphneServer):
    """One daphne process, pinned to `core` with taskset when the machine has two cores."""

    def __init__(self, env, core, log_dir, extra_args=()):
        prefix = ["taskset", "-c", str(core)] if PINNED and core is not None else []
        super().__init__(env=env, log_dir=log_dir, args=extra_args, prefix=prefix)
        self.core = core

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def rss_bytes(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@dataclass
class Setup:
    """A configuration: its database, its environment and its servers."""

    name: str
    env: dict
    servers: list = field(default_factory=list)
    users: list = field(default_factory=list)  # session cookies, bench0 first
    log_dir: str = ""
    versions: dict = field(default_factory=dict)  # documents -> their summed versions

    def cpu(self):
        return sum(server.cpu_seconds() for server in self.servers)

    def stop(self):
        for server in self.servers:
            server.stop()


def machine_cpu_seconds():
    """Busy CPU seconds of the whole machine (every core, every process) since boot.

    With two cores the servers, the generator, PostgreSQL and Redis all share them; what the
    machine as a whole had left says whether a configuration could go faster here at all.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def make_setup(name, log_dir):
    env = {
        # As in production: DEBUG records every query, which costs more than the query.
        "DEBUG": "0",
        "TANDEM_LOG_LEVEL": "WARNING",
        "TANDEM_RATE_LIMIT_PER_SECOND": "1000000",
        "TANDEM_MAX_MESSAGE_BYTES": str(8 * 1024 * 1024),
    }
    if name == "embedded":
        env["DATABASE_URL"] = sqlite_database(tempfile.mkdtemp(prefix="tandem-bench-"))
    else:
        import psycopg
        import redis

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as db:
            db.execute("DROP DATABASE IF EXISTS tandem_bench WITH (FORCE)")
            db.execute("CREATE DATABASE tandem_bench")
        redis.Redis.from_url(REDIS).flushdb()
        env["DATABASE_URL"] = f"{POSTGRES}/tandem_bench"
        env["REDIS_URL"] = REDIS
        manage("migrate", "--noinput", env=env)
    setup = Setup(name, env, log_dir=log_dir)
    setup.users = make_users(100, env)
    cores = [0, 1] if name == "two-processes" else [0]
    setup.servers = [Server(env, core, log_dir).start() for core in cores]
    return setup


def make_users(count, env):
    """Users bench0..benchN-1 with a signed-in session each; returns their session keys."""
    code = f"""
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
User = get_user_model()
keys = []
for i in range({count}):
    user, _ = User.objects.get_or_create(username=f"bench{{i}}")
    user.set_unusable_password()
    user.save()
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    keys.append(session.session_key)
print(json.dumps(keys))
"""
    return run_python(code, env=env)


def make_documents(count, editors, env):
    """`count` documents owned by bench0 and shared with bench1..bench{editors-1}."""
    code = f"""
import json
from django.contrib.auth import get_user_model
from django.db import transaction
from editor.models import Document, DocumentAccess
users = list(get_user_model().objects.filter(username__startswith="bench").order_by("pk"))
users = sorted(users, key=lambda u: int(u.username[5:]))[:{editors}]
with transaction.atomic():
    docs = Document.objects.bulk_create(
        [Document(owner=users[0], title=f"load {{i}}") for i in range({count})])
    DocumentAccess.objects.bulk_create(
        [DocumentAccess(document=d, user=u, role="editor") for d in docs for u in users[1:]])
print(json.dumps([d.pk for d in docs]))
"""
    return run_python(code, env=env)


def database_digests(doc_ids, env):
    """{doc_id: [version, length, sha256]} of each document's text as the database has it."""
    code = f"""
import hashlib, json
from collab import store
out = {{}}
for doc in {list(doc_ids)!r}:
    loaded = store.load(doc)
    text = "".join(op["insert"] if isinstance(op.get("insert"), str) else "\\x00"
                   for op in loaded.content.ops)
    out[doc] = [loaded.version, len(text), hashlib.sha256(text.encode()).hexdigest()]
print(json.dumps(out))
"""
    return {int(k): v for k, v in run_python(code, env=env).items()}


# ---- the generator -----------------------------------------------------------------------


def client_specs(setup, doc_ids, per_doc, by_document=False):
    """Client i edits document i // per_doc as user i % per_doc, on server i % servers (or,
    `by_document`, on the server of its document, as a proxy routing by document would)."""
    specs = []
    for i in range(len(doc_ids) * per_doc):
        server = setup.servers[(i // per_doc if by_document else i) % len(setup.servers)]
        doc = doc_ids[i // per_doc]
        specs.append({
            "url": f"{server.ws_url}/ws/documents/{doc}/",
            "origin": server.url,
            "cookie": setup.users[i % per_doc],
            "group": doc,
        })  # fmt: skip
    return specs


def run_generator(setup, config, on_event=None, timeout=600):
    """Run bench/load.mjs with `config`; calls on_event(event) per line; returns the result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    pin = PINNED and len(setup.servers) == 1
    command = [*(["taskset", "-c", "1"] if pin else []), "node", str(GENERATOR), handle.name]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    result = None
    deadline = time.monotonic() + timeout
    try:
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "result":
                result = event
            elif on_event is not None:
                on_event(event)
            if time.monotonic() > deadline:
                break
    finally:
        if process.poll() is None:
            process.wait(timeout=30)
        os.unlink(handle.name)
    if result is None:
        raise RuntimeError(f"the generator ended without a result (exit {process.returncode})")
    return result


# ---- profiles ----------------------------------------------------------------------------

PROFILE_DIR = None
PROFILE_SECONDS = 3


def start_profile(setup, label):
    """py-spy on each server for PROFILE_SECONDS: sampling, non-blocking, on core 1, and only
    the thread holding the GIL (so the samples approximate the server's Python CPU time)."""
    spies = []
    for server in setup.servers:
        out = Path(PROFILE_DIR) / f"{setup.name}-{label}-{server.port}.txt"
        spy = str(Path(sys.executable).parent / "py-spy")
        pid = str(server.process.pid)
        command = [spy, "record", "--nonblocking", "--gil", "--format", "raw", "-r", "200",
                   "-d", str(PROFILE_SECONDS), "-p", pid, "-o", str(out)]  # fmt: skip
        if PINNED:
            command = ["taskset", "-c", "1", *command]
        quiet = subprocess.DEVNULL
        spies.append(subprocess.Popen(command, stdout=quiet, stderr=quiet))
    return spies


# ---- scenarios ---------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    config: str
    rate: str = "-"
    ack: str = "-"
    remote: str = "-"
    cpu_per_edit: str = "-"
    converged: str = "-"
    note: str = ""


def ms(summary, key):
    return f"{summary[key]:.1f}" if summary else "-"


def converged(setup, result, doc_ids):
    """All clients of each document agree with each other and with the database."""
    database = database_digests(doc_ids, setup.env)
    versions = sum(version for version, _, _ in database.values())
    result["commits"] = versions - setup.versions.get(tuple(doc_ids), 0)
    setup.versions[tuple(doc_ids)] = versions
    for digest in result["digests"]:
        _, length, sha = database[digest["group"]]
        if (digest["length"], digest["sha"]) != (length, sha):
            return False
    return True


def typing_step(setup, doc_ids, per_doc, rate, seconds, by_document=False):
    """One open-loop typing run at `rate` keystrokes/s per client; returns a verdict dict."""
    specs = client_specs(setup, doc_ids, per_doc, by_document)
    cpu = {}

    spies = []

    def on_event(event):
        if event["event"] in ("start", "stop"):
            cpu[event["event"]] = (setup.cpu(), time.monotonic(), machine_cpu_seconds())
        if event["event"] == "start" and PROFILE_DIR:
            spies.extend(start_profile(setup, f"{len(doc_ids)}x{per_doc}-{rate * len(specs):.0f}"))

    config = {"mode": "type", "clients": specs, "rate": rate, "seconds": seconds,
              "drainSeconds": 15, "connectAtOnce": 50}  # fmt: skip
    result = run_generator(setup, config, on_event)
    for spy in spies:
        spy.wait()
    server_cpu = cpu["stop"][0] - cpu["start"][0]
    wall = cpu["stop"][1] - cpu["start"][1]
    machine_cpu = cpu["stop"][2] - cpu["start"][2]
    same = converged(setup, result, doc_ids)
    clean = not result["errors"] and not result["closes"]
    remote = result["remote"]
    holds = (
        result["achieved"] >= MIN_ACHIEVED * result["offered"]
        and result["acked"] == result["typed"]
        and result["delivered"] == result["expectedDeliveries"]
        and result["settled"]
        and remote is not None
        and remote["p99"] <= MAX_REMOTE_P99_MS
        and same
        and clean
    )
    delivered = result["deliveredInWindow"]
    verdict = {
        "rate": result["offered"],
        "achieved": result["achieved"],
        "holds": holds,
        "converged": same,
        "result": result,
        "server_cpu": server_cpu / wall,
        "machine_cpu": machine_cpu / wall,
        "cpu_per_edit_us": server_cpu / delivered * 1e6 if delivered else None,
        "cpu_per_op_ms": server_cpu / max(1, result["commits"]) * 1e3,
    }
    log(
        f"  {setup.name}: {per_doc} x {len(doc_ids)} docs, offered {result['offered']:.0f}/s, "
        f"achieved {result['achieved']:.0f}/s, ack p50/p99 {ms(result['ack'], 'p50')}/"
        f"{ms(result['ack'], 'p99')} ms, remote p50/p99 {ms(remote, 'p50')}/{ms(remote, 'p99')}"
        f" ms, delivered {result['delivered']}/{result['expectedDeliveries']}, acked "
        f"{result['acked']}/{result['typed']} in {result['commits']} ops, server CPU "
        f"{verdict['server_cpu']:.0%}, "
        f"generator CPU {result['generatorCpu']:.0%}, machine busy {machine_cpu / wall:.2f} "
        f"of {os.cpu_count()} cores, converged {same}, errors "
        f"{result['errors'] or '-'} closes {result['closes'] or '-'} -> "
        f"{'holds' if holds else 'fails'} (joined in {result['connect']['seconds']:.1f} s, "
        f"quiet {result['connect'].get('quietSeconds', 0):.1f} s later, generator schedule lag"
        f" p99 {ms(result['scheduleLagMs'], 'p99')} ms)"
    )
    return verdict


def typing_row(name, setup, verdict, extra=""):
    if verdict is None:
        return Row(name, setup.name, "none held", note=extra)
    result = verdict["result"]
    per_edit = verdict["cpu_per_edit_us"]
    return Row(
        name,
        setup.name,
        rate=f"{verdict['rate']:,.0f}",
        ack=f"{ms(result['ack'], 'p50')} / {ms(result['ack'], 'p99')}",
        remote=f"{ms(result['remote'], 'p50')} / {ms(result['remote'], 'p99')}",
        cpu_per_edit=f"{per_edit:.1f}" if per_edit else "-",
        converged="yes" if verdict["converged"] else "NO",
        note=(
            f"server CPU {verdict['server_cpu']:.0%} ({verdict['cpu_per_op_ms']:.1f} ms per "
            f"committed op, {verdict['result']['acked'] / max(1, result['commits']):.1f} "
            f"keystrokes per op), generator CPU {result['generatorCpu']:.0%}, machine busy "
            f"{verdict['machine_cpu']:.2f} of {os.cpu_count()} cores{extra}"
        ),
    )


def sweep(name, setup, docs, per_doc, start_rate, args, min_seconds=0, by_document=False):
    """Multiply the per-client rate until a step fails; report the highest that held."""
    doc_ids = make_documents(docs, per_doc, setup.env)
    clients = docs * per_doc
    start_rate = args.start or start_rate
    rate, held, failed = start_rate, None, None
    seconds = max(args.seconds, min_seconds)
    for _ in range(args.max_steps):
        verdict = typing_step(setup, doc_ids, per_doc, rate / clients, seconds, by_document)
        if verdict["holds"]:
            held = verdict
            rate *= args.factor
            continue
        failed = verdict
        if held is not None or rate <= start_rate / args.factor**2:
            break
        rate /= args.factor  # the first rate failed: step down (twice at most)
    # Halve the gap between the last rate that held and the first that failed, twice: with
    # factor 2 the rate held is then known within 19 % instead of 100 %.
    for _ in range(0 if args.quick else REFINE_STEPS):
        if not (held and failed):
            break
        between = math.sqrt(held["rate"] * failed["rate"])
        verdict = typing_step(setup, doc_ids, per_doc, between / clients, seconds, by_document)
        if verdict["holds"]:
            held = verdict
        else:
            failed = verdict
    extra = ""
    if failed:
        result = failed["result"]
        extra = (
            f"; next step {failed['rate']:,.0f}/s failed: achieved {failed['achieved']:,.0f}, "
            f"remote p99 {ms(result['remote'], 'p99')} ms, server CPU "
            f"{failed['server_cpu']:.0%}, machine busy {failed['machine_cpu']:.2f} cores"
        )
    return [typing_row(name, setup, held, extra)]


def fixed_rate(name, setup, per_doc, rate, args):
    doc_ids = make_documents(1, per_doc, setup.env)
    verdict = typing_step(setup, doc_ids, per_doc, rate, max(args.seconds, 10))
    row = typing_row(name, setup, verdict)
    if not verdict["holds"]:
        row.rate += " (fails)"
    return [row]


def connect_storm(name, setup, count, args):
    doc_ids = make_documents(1, min(count, 100), setup.env)
    specs = client_specs(setup, doc_ids * 1, min(count, 100))
    specs = [
        dict(specs[i % len(specs)], cookie=setup.users[i % 100]) for i in range(count)
    ]  # fmt: skip
    result = run_generator(setup, {"mode": "connect", "clients": specs})
    connect = result["connect"]
    ok = connect["joined"] == count and result["open"] == count and not result["errors"]
    log(f"  {setup.name}: {name}: {connect} open {result['open']} errors {result['errors']}")
    return [
        Row(
            name,
            setup.name,
            rate=f"{connect['joined']}/{count} joined",
            note=(
                f"{'no error' if ok else 'ERRORS ' + json.dumps(result['errors'])}; all joined "
                f"in {connect['seconds']:.2f} s, join p50/p99 {ms(connect['joinMs'], 'p50')} /"
                f" {ms(connect['joinMs'], 'p99')} ms"
            ),
        )
    ]


def idle(name, setup, args):
    count = args.idle
    per_doc = 10
    doc_ids = make_documents(count // per_doc, per_doc, setup.env)
    specs = client_specs(setup, doc_ids, per_doc)
    memory = {"before": sum(s.rss_bytes() for s in setup.servers)}

    def on_event(event):
        if event["event"] == "idle":
            memory["after"] = sum(s.rss_bytes() for s in setup.servers)
            memory["open"] = event["open"]

    config = {"mode": "idle", "clients": specs, "holdSeconds": 3, "connectAtOnce": 200}
    result = run_generator(setup, config, on_event, timeout=900)
    per_connection = (memory["after"] - memory["before"]) / max(1, memory["open"])
    log(f"  {setup.name}: idle: {result['connect']} memory {memory}")
    return [
        Row(
            f"{count:,} idle connections",
            setup.name,
            rate=f"{memory['open']:,}/{count:,} open",
            note=(
                f"{per_connection / 1024:.1f} KB of server RSS per connection "
                f"({memory['before'] / 2**20:.0f} -> {memory['after'] / 2**20:.0f} MiB), "
                f"{per_doc} per document, connected in {result['connect']['seconds']:.1f} s, "
                f"errors {result['errors'] or 'none'}"
            ),
        )
    ]


def seed_big_document(env, ops=100_000, chars=10, snapshot_every=200):
    """A document of ops x chars characters written by `ops` ops, with snapshots as the
    server would have taken them (every `snapshot_every` ops; only the last few are stored)."""
    code = f"""
import json, random
from django.contrib.auth import get_user_model
from django.db import transaction
from collab.models import Operation, Snapshot
from editor.models import Document, DocumentAccess
rng = random.Random(6)
owner = get_user_model().objects.get(username="bench0")
doc = Document.objects.create(owner=owner, title="big")
words = ["tandem", "delta", "quill", "edit", "note", "the", "of", "and", "server", "a"]
content, length, rows, snaps = [], 0, [], []
last = {ops} - 3 * {snapshot_every}
for version in range(1, {ops} + 1):
    text = ""
    while len(text) < {chars}:
        text += rng.choice(words) + " "
    text = text[:{chars} - 1] + ("\\n" if version % 8 == 0 else " ")
    op = {{"insert": text}}
    if version % 20 == 0 and not text.endswith("\\n"):
        op["attributes"] = {{"bold": True}}
    delta = ([{{"retain": length}}] if length else []) + [op]
    rows.append(Operation(document=doc, version=version, delta=delta, author=owner,
                          client_id="seed-client", seq=version))
    if content and "attributes" not in op and "attributes" not in content[-1]:
        content[-1] = {{"insert": content[-1]["insert"] + text}}
    else:
        content.append(dict(op))
    length += len(text)
    if version >= last and version % {snapshot_every} == 1:
        snaps.append(Snapshot(document=doc, version=version,
                              content=content + [{{"insert": "\\n"}}]))
with transaction.atomic():
    Operation.objects.bulk_create(rows, batch_size=5000)
    Snapshot.objects.bulk_create(snaps)
print(json.dumps([doc.pk, length + 1, len(content) + 1, [s.version for s in snaps]]))
"""
    return run_python(code, env=env)


def open_big(name, setup, args):
    """Time from connect to the `joined` frame with the content, with daphne's default 1 MiB
    message limit and again with the limit raised to 16 MiB."""
    doc, length, content_ops, snapshots = seed_big_document(setup.env)
    database = database_digests([doc], setup.env)[doc]
    rows = []
    for limit in (None, 16 * 2**20):
        if limit:
            setup.stop()
            extra = ["--websocket-max-message-size", str(limit)]
            setup.servers = [Server(setup.env, 0, setup.log_dir, extra).start()]
        spec = client_specs(setup, [doc], 1)[0]
        result = run_generator(setup, {"mode": "open", "clients": [spec], "trials": 4})
        trials = result["trials"]
        same = all(t["ok"] and (t["length"], t["sha"]) == tuple(database[1:]) for t in trials)
        log(f"  {setup.name}: open, limit {limit}: {trials} db {database}")
        if all(t["ok"] for t in trials):
            again = sorted(t["firstContentMs"] for t in trials[1:])
            first = trials[0]["firstContentMs"]
            held = f"{first:.0f} ms cold, {again[len(again) // 2]:.0f} ms again"
        else:
            held = f"no content ({sum(not t['ok'] for t in trials)}/{len(trials)} closed)"
        how = f"daphne --websocket-max-message-size {limit}" if limit else "daphne defaults"
        rows.append(
            Row(
                name,
                setup.name,
                rate=held,
                converged="yes" if same else "NO",
                note=(
                    f"{how}; connect -> `joined` with the content; {length:,} characters"
                    f" in {content_ops:,} content ops, 100,000 ops in the log, last snapshot at "
                    f"version {snapshots[-1]:,} ({100_000 - snapshots[-1]} ops replayed)"
                ),
            )
        )
    return rows


SCENARIOS = {
    "10x1": ("10 editors, 1 doc", lambda t, s, a: sweep(t, s, 1, 10, 100, a)),
    "100x1": ("100 editors, 1 doc", lambda t, s, a: sweep(t, s, 1, 100, 50, a)),
    "typing10": ("10 editors x 5/s", lambda t, s, a: fixed_rate(t, s, 10, 5, a)),
    "typing100": ("100 editors x 5/s", lambda t, s, a: fixed_rate(t, s, 100, 5, a)),
    "1000x3": ("1000 docs x 3 editors", lambda t, s, a: sweep(t, s, a.docs, 3, 50, a, 10)),
    "1000x3-routed": (
        "1000 docs x 3 editors, routed by document",
        lambda t, s, a: sweep(t, s, a.docs, 3, 50, a, 10, by_document=True),
    ),
    "connect100": ("100 connect at once", lambda t, s, a: connect_storm(t, s, 100, a)),
    "connect1000": ("1000 connect at once", lambda t, s, a: connect_storm(t, s, 1000, a)),
    "idle": ("idle connections", lambda t, s, a: idle(t, s, a)),
    "open": ("open 1 MB, 100k ops", lambda t, s, a: open_big(t, s, a)),
}
# Routing by document changes nothing where there is one process.
DEFAULT_CONFIGS = {
    "idle": ["embedded"],
    "open": ["embedded", "services"],
    "1000x3-routed": ["two-processes"],
}
CONFIGS = ["embedded", "services", "two-processes"]


def table(rows):
    lines = [
        "| scenario | config | rate held (edits/s) | ack p50 / p99 ms | remote p50 / p99 ms "
        "| server CPU us / delivered edit | converged | notes |",
        "|---|---|---:|---|---|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.config} | {r.rate} | {r.ack} | {r.remote} | "
            f"{r.cpu_per_edit} | {r.converged} | {r.note} |"
        )
    return "\n".join(lines)


def calibrate():
    """The machine's speed now (bench/calibrate.py), in words, from a process of its own."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "calibrate.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        return f"unknown ({done.stderr.strip()[-200:]})"
    return describe(json.loads(done.stdout))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--config", action="append", choices=CONFIGS)
    parser.add_argument("--quick", action="store_true", help="3 s steps, factor 2")
    parser.add_argument("--seconds", type=float, default=5, help="typing time per step")
    parser.add_argument("--factor", type=float, default=2, help="rate multiplier per step")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--start", type=float, help="first rate of a sweep (edits/s)")
    parser.add_argument("--docs", type=int, default=1000, help="documents of 1000x3")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections")
    parser.add_argument("--profile", metavar="DIR", help="py-spy each typing step into DIR")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.profile and not (Path(sys.executable).parent / "py-spy").exists():
        parser.error("--profile needs py-spy in this venv: .venv/bin/pip install py-spy")
    if args.profile:
        global PROFILE_DIR
        PROFILE_DIR = args.profile
        Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
    if args.list:
        for key, (title, _) in SCENARIOS.items():
            print(f"{key:12} {title}")
        return
    if args.quick:
        args.seconds = 3
    scenarios = args.scenario or list(SCENARIOS)
    rows = []
    log_dir = tempfile.mkdtemp(prefix="tandem-load-")
    log(f"server logs in {log_dir}; pinned: {PINNED}")
    machine = [calibrate()]
    log(f"machine: {machine[0]}")
    for config in args.config or CONFIGS:
        wanted = [
            key for key in scenarios if args.scenario or config in DEFAULT_CONFIGS.get(key, CONFIGS)
        ]
        if not wanted:
            continue
        for key in wanted:
            log(f"{key} on {config}")
            setup = make_setup(config, log_dir)
            try:
                title, run = SCENARIOS[key]
                rows.extend(run(title, setup, args))
            except Exception as error:  # report the failure in the table and go on
                log(f"  {key} on {config} failed: {error!r}")
                rows.append(Row(SCENARIOS[key][0], config, "error", note=repr(error)[:200]))
            finally:
                setup.stop()
    machine.append(calibrate())
    print(table(rows))
    print(f"\nMachine (bench/calibrate.py): before the run {machine[0]}; after, {machine[1]}.")


if __name__ == "__main__":
    main()
