"""The one write path: transform -> commit to the op log -> ack -> broadcast.

Each hub runs `run` as its only task that changes document state. Edits that arrive while a
commit is under way wait in the queue and are committed together in the next transaction
(group commit), and each socket receives them in one frame; the batches of other documents
that wait at the same time share that transaction (collab.groupcommit). Nothing is acked or
broadcast before the transaction holding it has committed.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from collab.ot import Delta, DeltaError

from . import docsize, metrics, store
from .dbthread import db
from .protocol import ProtocolError, encode

log = logging.getLogger("tandem.commit")

MAX_BATCH = 500
# A busy hub rests after each batch for PACE times as long as the batch kept it busy (at most
# MAX_PAUSE), so the edits that arrive meanwhile share the next transaction and the next frame
# to each socket. Most of the cost of an edit is per frame and per transaction, so under load
# this is what lets the throughput grow with the number of editors. A hub whose edits come
# further apart than that never waits. The time spent waiting for the database does not
# count: edits already gather during it, and PostgreSQL's commit (its log flushed to disk,
# 1-2 ms here, now and then 10-20) would otherwise be waited out twice, the slowest the most.
PACE = 1.0
MAX_PAUSE = 0.02


async def run(hub):
    """Drain the hub's queue until the hub closes."""
    rest_until = 0.0
    while not hub.closed:
        items = [await hub.queue.get()]
        pause = rest_until - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        started = time.monotonic()
        while len(items) < MAX_BATCH and not hub.queue.empty():
            items.append(hub.queue.get_nowait())
        submits = [item for item in items if item[0] == "submit"]
        submissions = [(consumer, submission) for _, consumer, submission, _ in submits]
        # When each edit reached the hub (DocumentHub.submit), for the ack latency metric.
        arrived = {
            (consumer.client_id, submission.seq): at for _, consumer, submission, at in submits
        }
        waited = 0.0  # for the database
        # Each step is guarded on its own: a failed catch-up must not cost the batch its
        # commit, nor a failed commit the hub its idle close.
        with _logged(hub, "catch-up"):
            for item in items:
                if item[0] == "remote":
                    await apply_remote(hub, item[1])
                elif item[0] == "behind" and item[1] > hub.version:
                    await catch_up(hub)
        if submissions:
            try:
                waited = await commit_batch(hub, submissions, arrived)
            except Exception:
                # Whatever failed, no edit goes unanswered: its client resends it.
                log.exception("commit loop error doc=%s", hub.document_id)
                await refuse(submissions, UNAVAILABLE)
        with _logged(hub, "idle close"):
            if any(item[0] == "idle" for item in items) and not hub.connections:
                await hub.registry.close(hub)
        finished = time.monotonic()
        rest_until = finished + rest(finished - started, waited)


@contextlib.contextmanager
def _logged(hub, step):
    """Log and swallow an error of `step`: the hub must keep serving."""
    try:
        yield
    except Exception:
        log.exception("commit loop error (%s) doc=%s", step, hub.document_id)


def rest(took, waited):
    """Seconds to rest after a batch that took `took`, `waited` of them for the database."""
    return min(MAX_PAUSE, PACE * max(0.0, took - waited))


# Answers to edits that could not be committed (docs/protocol.md, error codes).
UNAVAILABLE = ("unavailable", "the document's storage is unavailable; resend the edit later")
COMMIT_FAILED = ("commit_failed", "the edit could not be stored")


async def commit_batch(hub, submissions, arrived=None):
    """Commit the submitted edits that are valid, then ack each and broadcast them; returns
    the seconds spent waiting for the commit.

    Every edit is answered. When the database connection fails twice in a row, every edit
    of the batch is refused as `unavailable` (its client resends it). Any other failure is
    the data's: the batch is halved until the edit that fails is alone, and only that one is
    refused (`commit_failed`), so one bad edit never takes its neighbours down.

    `arrived` maps (client_id, seq) to the monotonic time the edit reached the hub, for the
    ack latency metric.
    """
    try:
        plan, waited = await _commit(hub, submissions)
    except store.TRANSIENT:
        log.warning("database unavailable doc=%s", hub.document_id, exc_info=True)
        await refuse(submissions, UNAVAILABLE)
        return 0.0
    except Exception:
        if len(submissions) == 1:
            log.exception("commit failed doc=%s", hub.document_id)
            await refuse(submissions, COMMIT_FAILED)
            return 0.0
        half = len(submissions) // 2
        first = await commit_batch(hub, submissions[:half], arrived)
        return first + await commit_batch(hub, submissions[half:], arrived)
    if plan.missing:
        # Other processes committed these first; our sockets get them before our acks.
        hub.content, hub.version = plan.base_content, plan.missing[-1].version
        hub.size.record(plan.base_content, plan.base_size)
        hub.remember(plan.missing)
        await broadcast(hub, plan.missing)
    if plan.committed:
        hub.size.record(plan.content, plan.size)
    await _publish(hub, plan.committed, plan.replies, plan.content, arrived)
    return waited


async def _commit(hub, submissions):
    """(the committed plan, seconds waited); one retry after a connection error, which the
    database thread answers by closing the connection so that the retry opens a new one."""
    for attempt in (1, 2):
        asked = time.monotonic()
        try:
            plan = await hub.registry.commits.commit(
                hub.document_id, hub.version, lambda missing: _plan(hub, submissions, missing)
            )
        except store.TRANSIENT:
            if attempt == 2:
                raise
            log.warning("commit retried doc=%s", hub.document_id, exc_info=True)
            continue
        return plan, time.monotonic() - asked


async def refuse(submissions, answer):
    """Send each edit's author the error `answer` (code, message) naming its seq."""
    code, text = answer
    for consumer, submission in submissions:
        metrics.rejected(code)
        error = ProtocolError(code, text, seq=submission.seq)
        await consumer.send_frame(encode(error.as_message()))


@dataclass(slots=True)
class Plan:
    missing: list  # ops other processes committed since the hub's version
    base_content: object  # the hub's content with `missing` applied
    committed: list
    replies: list
    content: object
    size: int = 0  # a bound on the size of `content` (collab.docsize)
    base_size: int = 0  # and of `base_content`


def _plan(hub, submissions, missing):
    """Transform each edit onto the newest version. Runs inside the commit transaction, with
    the document locked, in the database thread; it reads the hub but changes nothing in it.

    `missing` None is the store's first try, before any lock (store.commit_all): as if nothing
    were missing, and as if the first edit of a client the hub has not met were no resend.
    The log's unique (document, client, seq) key refuses a resend there, and the batch is
    planned again under the lock, where the log is asked. So a client's first keystroke in a
    document costs no query of its own.
    """
    checked = missing is not None
    missing = missing or []
    content = hub.content
    size = hub.size.of(content)
    for op in missing:
        content = op.delta.apply_to(content)
        size += docsize.inserted(op.delta)
    plan = Plan(missing, content, [], [], content, size, size)
    limit = settings.TANDEM_MAX_DOCUMENT_BYTES
    version = missing[-1].version if missing else hub.version
    seen = dict(hub.last_seq)
    for op in missing:
        seen[op.client_id] = (op.seq, op.version, op.user)
    for consumer, submission in submissions:
        client, seq = consumer.client_id, submission.seq
        known = seen.get(client)
        if checked and (known is None or known[0] < seq - 1):
            found = store.find_committed(hub.document_id, client, seq)
            if found is not None:
                known = seen[client] = (seq, *found)
        owner = known[2] if known is not None else hub.claims.get(client, consumer.user_id)
        if owner != consumer.user_id:
            # Checked at `hello` too (DocumentHub.claim_client); this holds across processes.
            text = "this client id belongs to someone else"
            error = ProtocolError("client_id_taken", text, seq=seq)
            plan.replies.append((consumer, error.as_message()))
            continue
        if known is not None and seq <= known[0]:
            if seq == known[0]:
                reply = {"type": "ack", "seq": seq, "version": known[1]}
            else:
                reply = ProtocolError("bad_sequence", "an older edit cannot be resent", seq=seq)
                reply = reply.as_message()
            plan.replies.append((consumer, reply))
            continue
        if submission.version > version:
            error = ProtocolError("future_version", "edit made on an unknown version", seq=seq)
            plan.replies.append((consumer, error.as_message()))
            continue
        delta = submission.delta
        for op in _ops_between(hub, submission.version, missing, plan.committed):
            delta = op.delta.transform(delta, True)
        try:
            after = delta.apply_to(plan.content)
        except DeltaError as error:
            plan.replies.append((consumer, _error(error, submission)))
            continue
        size = docsize.check(plan.size, delta, after, limit)
        if size is None:
            error = ProtocolError(
                "document_too_large", f"a document is limited to {limit} bytes", seq=seq
            )
            plan.replies.append((consumer, error.as_message()))
            continue
        plan.content, plan.size = after, size
        version += 1
        plan.committed.append(store.Committed(version, delta, client, seq, consumer.user_id))
        seen[client] = (seq, version, consumer.user_id)
    return plan


def _ops_between(hub, since, missing, pending):
    """Every op committed after version `since`: the hub's, then others', then this batch's."""
    ops = [*missing, *pending]
    first = ops[0].version if ops else hub.version + 1
    if since + 1 >= first:
        return ops[since + 1 - first :]
    oldest = hub.recent[0].version if hub.recent else hub.version + 1
    if since + 1 >= oldest:
        known = hub.recent[since + 1 - oldest :]
    else:
        known = store.ops_since(hub.document_id, since, hub.version - since)
    return [*known, *ops]


def _observe_acks(committed, replies, arrived):
    """One ack latency observation per ack of this batch, timed once they are all sent."""
    now = time.monotonic()
    for op in committed:
        start = arrived.get((op.client_id, op.seq))
        if start is not None:
            metrics.ack_latency(now - start)
    for consumer, reply in replies:
        if reply["type"] == "ack":  # A resent edit, acked again.
            start = arrived.get((consumer.client_id, reply["seq"]))
            if start is not None:
                metrics.ack_latency(now - start)


def _error(error, submission):
    code = getattr(error, "code", "bad_delta")
    return {"type": "error", "code": code, "message": str(error), "seq": submission.seq}


async def _publish(hub, committed, replies, content, arrived=None):
    """After the commit: update the hub, ack the authors, broadcast to everyone else."""
    if committed:
        hub.version = committed[-1].version
        hub.content = content
        hub.remember(committed)
        metrics.committed(len(committed))
    for consumer, reply in replies:
        if reply["type"] == "error":
            metrics.rejected(reply["code"])
        await consumer.send_frame(encode(reply))
    if committed:
        await broadcast(hub, committed)
    if arrived:
        _observe_acks(committed, replies, arrived)
    if not committed:
        return
    hub.registry.bridge.publish(
        hub, {"type": "doc.ops", "ops": [op.as_message() for op in committed]}
    )
    if hub.version - hub.snapshot_version >= settings.TANDEM_SNAPSHOT_EVERY_OPS:
        hub.snapshot_soon("auto")


async def broadcast(hub, ops):
    """One frame per socket, serialised once.

    A lone edit is acked to its author and sent to the others. The edits of a batch go to
    everyone in one `ops` message, in which each author finds its own edit: that is its ack
    (docs/protocol.md), and it saves a frame per author.
    """
    shared = encode({"type": "ops", "ops": [op.as_message() for op in ops]})
    consumers = list(hub.connections.values())
    metrics.fan_out(len(consumers))
    author = ops[0].client_id if len(ops) == 1 else None
    for consumer in consumers:
        if consumer.client_id == author:
            ack = {"type": "ack", "seq": ops[0].seq, "version": ops[0].version}
            await consumer.send_frame(encode(ack))
        else:
            await consumer.send_frame(shared)


async def apply_remote(hub, messages):
    """Ops committed by another process: apply the new ones in order, fetch any gap."""
    fresh = [m for m in messages if m["version"] > hub.version]
    if not fresh:
        return
    if fresh[0]["version"] != hub.version + 1:
        await catch_up(hub)
        return
    ops = [store.Committed(m["version"], _delta(m), m["client_id"], m["seq"], m["user"])
           for m in fresh]  # fmt: skip
    _advance(hub, ops)
    await broadcast(hub, ops)


async def catch_up(hub):
    """Read the ops other processes committed since the hub's version and pass them on."""
    ops = await db(store.ops_since)(hub.document_id, hub.version)
    if ops:
        _advance(hub, ops)
        await broadcast(hub, ops)


def _advance(hub, ops):
    content = hub.content
    size = hub.size.of(content)
    for op in ops:
        content = op.delta.apply_to(content)
        size += docsize.inserted(op.delta)
    hub.content = content
    hub.size.record(content, size)
    hub.version = ops[-1].version
    hub.remember(ops)


def _delta(message):
    return Delta(message["delta"])
