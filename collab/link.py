"""Whether the channel layer still carries this process's messages: a pure judgement.

The bridge sends itself a numbered beat through the layer every second and tells `Link`
what happened: a beat sent, a beat heard back, a send that failed. Redis pub/sub drops what
is published while a subscriber is cut off and says nothing, so an event from another process
can be lost without any error here; a beat that does not come back, or comes back after a
gap in the numbers, is how this process learns that it may have missed some.

`Link` only decides; the bridge acts on what it answers (collab.bridge):

    LOST      the link is suspect from now on: read the database instead of trusting events
    RESTORED  beats come back again: whatever was published meanwhile is lost, resync
    MISSED    beats went missing while the link looked up: a loss and a recovery in one
"""

LOST = "lost"
RESTORED = "restored"
MISSED = "missed"

# Beats go out once a second; three missed in a row is a lost link, not a slow one.
BEAT_SECONDS = 1.0
LINK_TIMEOUT = 3.0


class Link:
    def __init__(self, now, timeout=LINK_TIMEOUT):
        self.up = True
        self.timeout = timeout
        self.heard_at = now
        self.sent = 0  # number of the latest beat sent
        self.heard = 0  # number of the latest beat heard back

    def beat(self):
        """The number for the next beat to send."""
        self.sent += 1
        return self.sent

    def failed(self):
        """A send or receive through the layer raised: LOST, or None if already lost."""
        return self._lose()

    def heard_back(self, number, now):
        """A beat came back: RESTORED if the link was lost, MISSED if beats before it went
        missing, else None.

        Beats come back in order over one subscription, so a gap means the layer dropped
        messages while we were not looking (a restart quicker than LINK_TIMEOUT).
        """
        gap = number > self.heard + 1
        self.heard = max(self.heard, number)
        self.heard_at = now
        if not self.up:
            self.up = True
            return RESTORED
        return MISSED if gap else None

    def check(self, now):
        """LOST if no beat came back for `timeout` seconds (and the link was up), else None."""
        if now - self.heard_at > self.timeout:
            return self._lose()
        return None

    def _lose(self):
        if not self.up:
            return None
        self.up = False
        return LOST
