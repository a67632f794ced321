"""Database work of the real-time engine. Plain sync functions; the hub runs them in a thread.

A document's content is its latest snapshot composed with the ops after it. A document that
has neither is Quill's empty document at version 0.
"""

import functools
import json
import logging
import weakref
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connection,
    transaction,
)
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from collab.ot import Delta
from editor.access import role_of
from editor.models import Document

from .models import Operation, Snapshot

log = logging.getLogger("tandem.store")

EMPTY_DOCUMENT = [{"insert": "\n"}]

# Errors of the connection rather than of the data (a terminated backend, a restarted or
# unreachable server): the same work can succeed on a fresh connection.
TRANSIENT = (OperationalError, InterfaceError)


@dataclass(slots=True)
class Committed:
    """An op as it sits in the log and travels in `ops` messages."""

    version: int
    delta: Delta
    client_id: str
    seq: int
    user: int | None

    def as_message(self):
        return {
            "version": self.version,
            "delta": self.delta.ops,
            "client_id": self.client_id,
            "seq": self.seq,
            "user": self.user,
        }


@dataclass(slots=True)
class Loaded:
    version: int
    content: Delta
    ops: list
    locked: bool


def load(document_id):
    """The document's current version and content, with the ops since its latest snapshot.

    Raises Document.DoesNotExist when it was deleted.
    """
    locked = Document.objects.values_list("locked", flat=True).get(pk=document_id)
    snapshot = (
        Snapshot.objects.filter(document_id=document_id)
        .order_by("-version")
        .only("version", "content")
        .first()
    )
    base_version = snapshot.version if snapshot else 0
    content = Delta(snapshot.content if snapshot else EMPTY_DOCUMENT)
    ops = ops_since(document_id, base_version)
    for op in ops:
        content = op.delta.apply_to(content)
    version = ops[-1].version if ops else base_version
    return Loaded(version, content, ops, locked)


def ops_since(document_id, version, limit=None):
    """Committed ops after `version`, in version order."""
    with connection.cursor() as cursor:
        return _ops_since(cursor, document_id, version, limit)


def _ops_since(cursor, document_id, version, limit=None):
    sql = _commit_sql()
    if limit is None:
        cursor.execute(sql.since, [document_id, version])
    else:
        cursor.execute(f"{sql.since} LIMIT %s", [document_id, version, limit])
    return [_committed(*row) for row in cursor.fetchall()]


def _committed(version, delta, client_id, seq, author):
    """A row of `since` (its columns in Committed's order) as a Committed op."""
    return Committed(version, Delta(json.loads(delta)), client_id, seq, author)


def newer_versions(known):
    """{document_id: its newest version} for the documents of `known` ({document_id: version})
    whose log has gone past the version given. Deleted documents are left out.

    One query for all open documents, each answered from the end of the (document, version)
    index.
    """
    if not known:
        return {}
    newest = (
        Operation.objects.filter(document_id=OuterRef("pk")).order_by("-version").values("version")
    )
    rows = (
        Document.objects.filter(pk__in=list(known))
        .annotate(newest=Subquery(newest[:1]))
        .values_list("pk", "newest")
    )
    return {pk: newest for pk, newest in rows if newest is not None and newest > known[pk]}


def find_committed(document_id, client_id, seq):
    """(version, author id) of the commit of (client_id, seq), or None.

    Asked inside the commit for the first edit of each client a hub meets (it could be a
    resend), so in SQL on the cursor like the commit itself.
    """
    with connection.cursor() as cursor:
        cursor.execute(_commit_sql().find, [document_id, client_id, seq])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def last_edit_of(document_id, client_id):
    """(seq, version, author id) of the client's latest edit in the document, or None.

    The author id is None when that user was deleted since. One probe of the log's unique
    (document, client, seq) index, from its end.
    """
    edits = Operation.objects.filter(document_id=document_id, client_id=client_id)
    found = list(edits.order_by("-seq").values_list("seq", "version", "author_id")[:1])
    return found[0] if found else None


def commit_locked(document_id, known_version, plan):
    """Run `plan(missing)` and store what it commits, in one transaction on the locked document.

    `missing` are the ops other processes committed after `known_version`. The row lock queues
    concurrent commits of one document fairly across processes, so none starves; on SQLite
    the IMMEDIATE transaction holds the write lock instead. Returns the plan.

    This runs once per batch of edits, so it speaks SQL on Django's cursor: building the same
    three statements through the ORM cost about 0.8 ms of CPU a commit, most of a commit.
    """
    sql = _commit_sql()
    with transaction.atomic(), connection.cursor() as cursor:
        if sql.lock:
            cursor.execute(sql.lock, [document_id])
        result = plan(_ops_since(cursor, document_id, known_version))
        rows = _rows(document_id, result.committed)
        if len(rows) == 1:
            cursor.execute(sql.insert, rows[0])  # psycopg's executemany costs a pipeline
        elif rows:
            cursor.executemany(sql.insert, rows)
    return result


def commit_all(requests):
    """`commit_locked` for several documents in one transaction: [(document_id, known_version,
    plan)] -> [the plan's result, or the exception that stopped it], in the same order.

    Open documents are typed into a few edits a second each; a transaction per edit was most
    of the cost of an edit, in the database and in the thread hand-off, so the commits of all
    documents that wait together share one. The documents are locked in id order, as every
    process does, so two processes never wait for each other in a cycle. On PostgreSQL the
    documents nobody else wrote to go first in one statement (`_commit_unopposed`). If
    anything fails, the transaction is rolled back and each document is committed on its own,
    so one document's failure never fails another's edits.
    """
    documents = [document_id for document_id, _, _ in requests]
    distinct = len(set(documents)) == len(documents)
    outcomes = _commit_unopposed(requests) if distinct else {}
    waiting = [i for i in range(len(requests)) if i not in outcomes]
    locked = _commit_each_locked([requests[i] for i in waiting], together=distinct)
    outcomes.update(zip(waiting, locked, strict=True))
    return [outcomes[i] for i in range(len(requests))]


def _commit_each_locked(requests, together):
    if len(requests) > 1 and together:
        try:
            return _commit_together(requests)
        except Exception:
            log.warning("group commit of %d documents failed; one by one", len(requests),
                        exc_info=True)  # fmt: skip
    outcomes = []
    for document_id, known_version, plan in requests:
        try:
            outcomes.append(commit_locked(document_id, known_version, plan))
        except Exception as error:
            outcomes.append(error)
    return outcomes


def _commit_unopposed(requests):
    """The commits of the documents no other process wrote to since their known versions,
    which is nearly all of them: {index in requests: the plan's result}, in one statement.

    One round trip to PostgreSQL, where the locking transaction takes five (about 0.6 ms
    against 1.1-1.3 for one document on the development machine). Each batch is planned as
    `plan(None)`: as if nothing were missing and no edit were a resend. A document whose log
    has moved past its known version is left out and left to the caller, which commits it
    with the lock. The statement locks the documents as the transaction does, so a locking
    commit never finds its versions taken between its read and its insert. If it fails (a
    resend, refused by the log's unique (document, client, seq) key; a version taken by a
    commit it waited for; a deleted document), nothing is written and every document is left
    to the caller, which plans it again with what it read.
    """
    sql = _commit_sql()
    if sql.unopposed is None or connection.in_atomic_block:
        return {}
    planned, records = {}, []
    for i, (document_id, known_version, plan) in enumerate(requests):
        try:
            outcome = plan(None)
        except Exception:
            continue  # it fails again, on its own, in the locked commit
        if not outcome.committed or outcome.committed[0].version != known_version + 1:
            continue  # only resends or refusals: what was missing decides their replies
        planned[i] = outcome
        records.extend(_record(document_id, known_version, op) for op in outcome.committed)
    if not planned:
        return {}
    documents = [requests[i][0] for i in planned]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                _unopposed_call(cursor, sql), [documents, now, json.dumps(records), len(documents)]
            )
            inserted = {document_id for (document_id,) in cursor.fetchall()}
    except IntegrityError:
        return {}
    except ProgrammingError as error:
        if getattr(error.__cause__, "sqlstate", None) != NO_SUCH_STATEMENT:
            raise
        # The session lost it (DEALLOCATE ALL, a pooler that switched sessions): prepare it
        # again next time; the locked commit needs no prepared statement.
        _prepared_on.discard(connection.connection)
        return {}
    return {i: outcome for i, outcome in planned.items() if requests[i][0] in inserted}


# The one-statement commit is a prepared statement: parsing and planning it took 0.3 ms of
# the 2 ms it took after an idle gap on the development machine (1.7 ms prepared). Its plan
# does not depend on its parameters (see `_unopposed_sql`), so PostgreSQL's generic plan is as
# good as a custom one. Prepared statements belong to a session: tracked per psycopg
# connection, so a reconnect prepares it again. A session can still lack it (behind a pooler
# in transaction mode, after DEALLOCATE): that commit then goes the locked way.
UNOPPOSED = "tandem_commit_unopposed"
NO_SUCH_STATEMENT = "26000"  # PostgreSQL's invalid_sql_statement_name
_prepared_on = weakref.WeakSet()


def _unopposed_call(cursor, sql):
    """The EXECUTE of the one-statement commit, prepared first if this connection has not."""
    if connection.connection not in _prepared_on:
        cursor.execute(sql.unopposed)
        _prepared_on.add(connection.connection)
    return f"EXECUTE {UNOPPOSED} (%s, %s, %s, %s)"


# Rows per INSERT statement: 7 parameters each stays far below SQLite's 32,766.
INSERT_ROWS = 500


def _commit_together(requests):
    sql = _commit_sql()
    ordered = sorted(range(len(requests)), key=lambda i: requests[i][0])
    outcomes = [None] * len(requests)
    with transaction.atomic(), connection.cursor() as cursor:
        ids = [requests[i][0] for i in ordered]
        if sql.lock:
            cursor.execute(sql.lock_many(len(ids)), ids)
        missing = _ops_since_many(cursor, [requests[i][:2] for i in ordered])
        rows = []
        for i in ordered:
            document_id, _, plan = requests[i]
            outcomes[i] = plan(missing[document_id])
            rows.extend(_rows(document_id, outcomes[i].committed))
        for start in range(0, len(rows), INSERT_ROWS):
            chunk = rows[start : start + INSERT_ROWS]
            cursor.execute(sql.insert_many(len(chunk)), [value for row in chunk for value in row])
    return outcomes


def _ops_since_many(cursor, known):
    """{document_id: committed ops after its known version} for [(document_id, version)]."""
    missing = {document_id: [] for document_id, _ in known}
    cursor.execute(
        _commit_sql().since_many(len(known)), [value for pair in known for value in pair]
    )
    for document_id, *op in cursor.fetchall():
        missing[document_id].append(_committed(*op))
    return missing


def _rows(document_id, committed):
    if not committed:
        return []
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    adapt = connection.ops.adapt_json_value
    return [
        (document_id, op.version, adapt(op.delta.ops, None), op.user, op.client_id, op.seq, now)
        for op in committed
    ]


@dataclass(frozen=True, slots=True)
class _CommitSQL:
    lock: str | None
    since: str
    insert: str
    find: str
    documents: str
    log: str
    unopposed: str | None

    def lock_many(self, count):
        """Locks `count` documents in id order: a lock taken row by row as they come sorted."""
        return (
            f"SELECT {_quote('id')} FROM {self.documents} WHERE {_quote('id')} IN "
            f"({', '.join(['%s'] * count)}) ORDER BY {_quote('id')} FOR UPDATE"
        )

    def since_many(self, count):
        """`since` for `count` (document, version) pairs, each row led by its document."""
        document, version = _quote("document_id"), _quote("version")
        which = " OR ".join([f"({document} = %s AND {version} > %s)"] * count)
        columns = ", ".join(_quote(c) for c in ["document_id", *_SINCE_COLUMNS])
        return f"SELECT {columns} FROM {self.log} WHERE {which} ORDER BY {document}, {version}"

    def insert_many(self, count):
        """`insert` with `count` rows of values: `insert` ends with the placeholders of one."""
        return self.insert + f", {_ROW}" * (count - 1)


_LOG_COLUMNS = ["document_id", "version", "delta", "author_id", "client_id", "seq", "created_at"]
_SINCE_COLUMNS = ["version", "delta", "client_id", "seq", "author_id"]  # Committed's order
_ROW = f"({', '.join(['%s'] * len(_LOG_COLUMNS))})"


def _quote(name):
    return connection.ops.quote_name(name)


@functools.cache
def _commit_sql():
    documents = _quote(Document._meta.db_table)
    log = _quote(Operation._meta.db_table)
    lock = None
    if connection.features.has_select_for_update:
        lock = f"SELECT {_quote('id')} FROM {documents} WHERE {_quote('id')} = %s FOR UPDATE"
    unopposed = None
    if connection.vendor == "postgresql":
        unopposed = _unopposed_sql(documents, log)
    return _CommitSQL(
        lock=lock,
        since=(
            f"SELECT {', '.join(_quote(c) for c in _SINCE_COLUMNS)} FROM {log} "
            f"WHERE {_quote('document_id')} = %s AND {_quote('version')} > %s "
            f"ORDER BY {_quote('version')}"
        ),
        insert=f"INSERT INTO {log} ({', '.join(_quote(c) for c in _LOG_COLUMNS)}) VALUES {_ROW}",
        find=(
            f"SELECT {_quote('version')}, {_quote('author_id')} FROM {log} "
            f"WHERE {_quote('document_id')} = %s "
            f"AND {_quote('client_id')} = %s AND {_quote('seq')} = %s"
        ),
        documents=documents,
        log=log,
        unopposed=unopposed,
    )


def _record(document_id, known_version, op):
    """An op as one object of `_unopposed_sql`'s JSON: its keys are the statement's columns."""
    values = (document_id, op.version, op.delta.ops, op.user, op.client_id, op.seq)
    return {**dict(zip(_LOG_COLUMNS[:-1], values, strict=True)), "known": known_version}


def _unopposed_sql(documents, log):
    """PostgreSQL: PREPARE a statement that locks the documents (a list of ids) in id order; if
    every one was there to lock (their count), inserts the rows (their time, and one JSON array
    of `_record`s) of each document whose log has nothing after its known version; and returns
    their document ids.

    The newest version is a scalar subquery per row, which PostgreSQL answers from the end of
    the (document, version) index; as NOT EXISTS it was planned as an anti-join on a scan of
    the whole log (58 ms with 200,000 ops in it).

    The rows travel as one JSON text, so the statement's text and parameters are the same for
    any number of rows: psycopg parses a statement with more than 50 parameters anew at every
    execution (about 5 us a parameter), and quotes each element of an array with a regex. For
    the same reason one prepared statement serves every batch, and its plan is the same for
    any parameters: a primary-key lookup per locked id and an index probe per row.
    """
    fields = {field.column: field for field in Operation._meta.concrete_fields}
    columns = _LOG_COLUMNS[:-1]  # created_at is the parameter
    id_type = Document._meta.pk.rel_db_type(connection)
    types = ", ".join(f"{_quote(c)} {fields[c].db_type(connection)}" for c in columns)
    created_at = fields["created_at"].db_type(connection)
    document, version = _quote("document_id"), _quote("version")
    return (
        f"PREPARE {UNOPPOSED} ({id_type}[], {created_at}, json, integer) AS "
        f"WITH locked AS (SELECT {_quote('id')} FROM {documents} "
        f"WHERE {_quote('id')} = ANY($1) ORDER BY {_quote('id')} FOR UPDATE) "
        f"INSERT INTO {log} ({', '.join(_quote(c) for c in _LOG_COLUMNS)}) "
        f"SELECT {', '.join(f'r.{_quote(c)}' for c in columns)}, $2 "
        f"FROM json_to_recordset($3) AS r({types}, {_quote('known')} integer) "
        f"WHERE (SELECT count(*) FROM locked) = $4 AND COALESCE((SELECT max(o.{version}) "
        f"FROM {log} AS o WHERE o.{document} = r.{document}), 0) <= r.{_quote('known')} "
        f"RETURNING {document}"
    )


def save_snapshot(document_id, version, content, reason="auto", user_id=None):
    """Store content at version unless a snapshot of that version exists already (a twin
    process saved it first).

    One INSERT that skips a taken version: a thousand documents closing together save a
    thousand snapshots, in a thread that shares the interpreter with the event loop, and
    `get_or_create` in a transaction (four statements) took 22 % of the samples then.
    """
    snapshot = Snapshot(
        document_id=document_id,
        version=version,
        content=content.ops,
        reason=reason,
        created_by_id=user_id,
    )
    try:
        Snapshot.objects.bulk_create([snapshot], ignore_conflicts=True)
    except IntegrityError:
        pass  # the document was deleted meanwhile: nothing left to snapshot


def roles(document_id, user_ids):
    """{user_id: role or None} for the users, after an access change."""
    document = Document.objects.filter(pk=document_id).first()
    users = get_user_model().objects.in_bulk(user_ids)
    return {
        user_id: (role_of(users[user_id], document) if document and user_id in users else None)
        for user_id in user_ids
    }
