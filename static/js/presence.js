/**
 * Who else is in the document and where their cursors are.
 *
 * Each remote selection refers to a committed version (protocol `presence`). It is moved to
 * the current version through the committed edits the sync client remembers, then through
 * our own pending edits, before it is drawn with quill-cursors. Nothing here trusts
 * quill-cursors to move cursors on text changes (transformOnTextChange stays off).
 */

const FLAG_MS = 2500;

function sameRange(a, b) {
  return a.index === b.index && a.length === b.length;
}

export class Presence {
  /**
   * @param {object} options
   * @param {import("./sync.js").SyncClient} options.client
   * @param {object|null} options.cursors  the quill-cursors module (null in read-only tests)
   * @param {HTMLElement} options.list  the #presence list
   * @param {Function} [options.schedule]  frame scheduler (requestAnimationFrame)
   */
  constructor({ client, cursors, list, schedule = (fn) => requestAnimationFrame(fn) }) {
    this.client = client;
    this.cursors = cursors;
    this.list = list;
    this.schedule = schedule;
    this.me = null; // {session, user}
    this.others = new Map(); // session -> {user, selection, version}
    this.drawn = new Set(); // sessions with a cursor element
    this.renderPending = false;
    this.flagTimers = new Map();
  }

  /** The `joined` answer: who we are and who is here. */
  joined(you, entries) {
    this.me = you || null;
    const seen = new Set();
    for (const entry of entries || []) {
      if (this.me && entry.session === this.me.session) continue;
      seen.add(entry.session);
      this.update(entry, false);
    }
    // Sessions that left while we were away.
    for (const session of [...this.others.keys()]) if (!seen.has(session)) this.leave(session);
    this.renderList();
    this.changed();
  }

  /** A `presence` message (or an entry of joined.presence). */
  update(entry, redraw = true) {
    if (this.me && entry.session === this.me.session) return;
    const known = this.others.get(entry.session);
    const isNew = !known;
    this.others.set(entry.session, {
      user: entry.user,
      selection: entry.selection || null,
      version: entry.version ?? 0,
    });
    if (redraw) {
      if (isNew) this.renderList();
      this.changed();
    }
  }

  leave(session) {
    if (!this.others.delete(session)) return;
    if (this.cursors && this.drawn.has(session)) this.cursors.removeCursor(session);
    this.drawn.delete(session);
    this.renderList();
  }

  /** Something moved (an edit, an ack, a presence): redraw cursors once per frame. */
  changed() {
    if (this.renderPending) return;
    this.renderPending = true;
    this.schedule(() => {
      this.renderPending = false;
      this.renderCursors();
    });
  }

  renderCursors() {
    if (!this.cursors) return;
    const client = this.client;
    for (const [session, other] of this.others) {
      if (!other.selection) {
        if (this.drawn.has(session)) this.cursors.removeCursor(session);
        this.drawn.delete(session);
        continue;
      }
      // Bring the stored selection up to the current version, so it never falls out of the
      // client's history, then onto our pending edits for display.
      const current = client.rangeToCurrent(other.selection, other.version);
      if (!current) continue; // from a version we have not reached yet: keep it as drawn
      other.selection = current;
      other.version = client.version;
      const local = client.rangeToLocal(current, client.version);
      const name = other.user ? other.user.name : "someone";
      const color = (other.user && other.user.color) || "#888";
      const cursor = this.cursors.createCursor(session, name, color);
      const moved = !cursor.range || !sameRange(cursor.range, local);
      this.cursors.moveCursor(session, local);
      this.drawn.add(session);
      if (moved) this.flashName(session);
    }
  }

  /** Show the name flag of a cursor that just moved, for a moment (like hovering it). */
  flashName(session) {
    this.cursors.toggleFlag(session, true);
    clearTimeout(this.flagTimers.get(session));
    this.flagTimers.set(
      session,
      setTimeout(() => {
        this.flagTimers.delete(session);
        if (this.drawn.has(session)) this.cursors.toggleFlag(session, false);
      }, FLAG_MS),
    );
  }

  /** The "Here now" list: us first, then everybody else once per user. */
  renderList() {
    const list = this.list;
    if (!list) return;
    const people = [];
    const users = new Set();
    if (this.me && this.me.user) {
      people.push({ ...this.me.user, you: true });
      users.add(this.me.user.id);
    }
    const others = [...this.others.values()]
      .map((other) => other.user)
      .filter(Boolean)
      .sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const user of others) {
      if (users.has(user.id)) continue;
      users.add(user.id);
      people.push(user);
    }
    list.replaceChildren(
      ...people.map((person) => {
        const item = list.ownerDocument.createElement("li");
        item.textContent = person.you ? `${person.name} (you)` : person.name;
        item.dataset.userId = String(person.id);
        if (person.color) item.style.setProperty("--dot", person.color);
        return item;
      }),
    );
  }
}
