"""Who is in a document and where their cursor is. Kept in memory only, never persisted."""

import time

PALETTE = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4",
    "#42d4f4", "#f032e6", "#469990", "#9a6324", "#800000",
]  # fmt: skip

# A session from another process that has not been confirmed alive for this long is dropped.
REMOTE_TTL_SECONDS = 25


def colour_for(user_id):
    return PALETTE[(user_id or 0) % len(PALETTE)]


def entry(session, user_id, name):
    return {
        "session": session,
        "user": {"id": user_id, "name": name, "color": colour_for(user_id)},
        "selection": None,
        "version": 0,
    }


class RemoteSessions:
    """Presence entries owned by other processes, with the last time each was confirmed."""

    def __init__(self):
        self.entries = {}
        self.seen = {}

    def put(self, item):
        self.entries[item["session"]] = item
        self.seen[item["session"]] = time.monotonic()

    def confirm(self, sessions):
        now = time.monotonic()
        for session in sessions:
            if session in self.entries:
                self.seen[session] = now

    def remove(self, session):
        self.seen.pop(session, None)
        return self.entries.pop(session, None) is not None

    def expired(self):
        limit = time.monotonic() - REMOTE_TTL_SECONDS
        gone = [session for session, seen in self.seen.items() if seen < limit]
        for session in gone:
            self.remove(session)
        return gone
