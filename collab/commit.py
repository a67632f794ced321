"""The one write path: transform -> commit to the op log -> ack -> broadcast.

Each hub runs `run` as its only task that changes document state. Edits that arrive while a
commit is under way wait in the queue and are committed together in the next transaction
(group commit), and each socket receives them in one frame. Nothing is acked or broadcast
before the transaction holding it has committed.
"""

import logging

from channels.db import database_sync_to_async
from django.conf import settings

from collab.ot import Delta, DeltaError

from . import store
from .protocol import ProtocolError, encode

log = logging.getLogger("tandem.commit")

MAX_BATCH = 500
MAX_ATTEMPTS = 8

db = database_sync_to_async


async def run(hub):
    """Drain the hub's queue until the hub closes."""
    while not hub.closed:
        items = [await hub.queue.get()]
        while len(items) < MAX_BATCH and not hub.queue.empty():
            items.append(hub.queue.get_nowait())
        submissions = [item[1:] for item in items if item[0] == "submit"]
        try:
            for item in items:
                if item[0] == "remote":
                    await apply_remote(hub, item[1])
            if submissions:
                await commit_batch(hub, submissions)
            if any(item[0] == "idle" for item in items) and not hub.connections:
                await hub.registry.close(hub)
        except Exception:
            # The hub must keep serving; the failed edits are resent by their clients.
            log.exception("commit loop error doc=%s", hub.document_id)


async def commit_batch(hub, submissions):
    """Commit the submitted edits that are valid, then ack each and broadcast them."""
    for _attempt in range(MAX_ATTEMPTS):
        await _learn_clients(hub, submissions)
        committed, replies, content = await _plan(hub, submissions)
        if committed:
            try:
                await db(store.insert)(hub.document_id, committed)
            except store.VersionTaken:
                # Another process committed first: learn its ops, then transform again.
                await catch_up(hub)
                continue
        await _publish(hub, committed, replies, content)
        return
    for consumer, submission in submissions:
        error = ProtocolError("busy", "the document is too busy; resend", seq=submission.seq)
        await consumer.send_frame(encode(error.as_message()))


async def _learn_clients(hub, submissions):
    """Make sure the hub knows each submitting client's last committed edit (for resends)."""
    for consumer, submission in submissions:
        client = consumer.client_id
        known = hub.last_seq.get(client)
        if known is not None and known[0] >= submission.seq - 1:
            continue
        version = await db(store.find_committed)(hub.document_id, client, submission.seq)
        if version is not None:
            hub.last_seq[client] = (submission.seq, version)


async def _plan(hub, submissions):
    """Transform each edit onto the newest version; nothing is changed in the hub yet.

    Returns the ops to commit, the replies for edits that are refused or already in, and the
    content once the ops are applied.
    """
    version, content = hub.version, hub.content
    pending = []
    replies = []
    seen = dict(hub.last_seq)
    for consumer, submission in submissions:
        known = seen.get(consumer.client_id)
        if known is not None and submission.seq <= known[0]:
            if submission.seq == known[0]:
                replies.append((consumer, {"type": "ack", "seq": known[0], "version": known[1]}))
            continue
        if submission.version > version:
            error = ProtocolError("future_version", "edit made on an unknown version")
            replies.append((consumer, _error(error, submission)))
            continue
        delta = submission.delta
        behind = version - submission.version
        if behind:
            earlier = (await hub.ops_after(submission.version)) if behind > len(pending) else []
            for op in [*earlier, *pending][-behind:]:
                delta = op.delta.transform(delta, True)
        try:
            content = delta.apply_to(content)
        except DeltaError as error:
            replies.append((consumer, _error(error, submission)))
            continue
        version += 1
        op = store.Committed(version, delta, consumer.client_id, submission.seq, consumer.user_id)
        pending.append(op)
        seen[consumer.client_id] = (submission.seq, version)
    return pending, replies, content


def _error(error, submission):
    code = getattr(error, "code", "bad_delta")
    return {"type": "error", "code": code, "message": str(error), "seq": submission.seq}


async def _publish(hub, committed, replies, content):
    """After the commit: update the hub, ack the authors, broadcast to everyone else."""
    if committed:
        hub.version = committed[-1].version
        hub.content = content
        hub.remember(committed)
    for consumer, reply in replies:
        await consumer.send_frame(encode(reply))
    if not committed:
        return
    await broadcast(hub, committed)
    hub.registry.bridge.publish(
        hub, {"type": "doc.ops", "ops": [op.as_message() for op in committed]}
    )
    if hub.version - hub.snapshot_version >= settings.TANDEM_SNAPSHOT_EVERY_OPS:
        hub.snapshot_soon("auto")


async def broadcast(hub, ops):
    """One frame per socket: its own edits as acks, everyone else's as one `ops` message."""
    authors = {op.client_id for op in ops}
    shared = encode({"type": "ops", "ops": [op.as_message() for op in ops]})
    for consumer in list(hub.connections.values()):
        if consumer.client_id not in authors:
            await consumer.send_frame(shared)
            continue
        for op in ops:
            if op.client_id == consumer.client_id:
                ack = {"type": "ack", "seq": op.seq, "version": op.version}
                await consumer.send_frame(encode(ack))
        others = [op.as_message() for op in ops if op.client_id != consumer.client_id]
        if others:
            await consumer.send_frame(encode({"type": "ops", "ops": others}))


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
    for op in ops:
        content = op.delta.apply_to(content)
    hub.content = content
    hub.version = ops[-1].version
    hub.remember(ops)


def _delta(message):
    return Delta(message["delta"])
