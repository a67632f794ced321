/**
 * A connection that stays up: reconnects with exponential backoff and jitter, sends a `ping`
 * every 10 s, and treats a connection that has been silent for 25 s as dead.
 *
 * It prefers a WebSocket. When WebSockets keep failing (never open, as behind a proxy that
 * refuses the upgrade, or keep dropping) and a fallback is configured, it tries the HTTP
 * event channel (event-channel.js), and while there it probes for a WebSocket now and then,
 * returning to it as soon as one opens.
 *
 * The fallback is for WebSockets that fail while HTTP answers, never for a network that is
 * down: a fallback that fails before it opens sends it back to WebSockets, and a fallback
 * entered because WebSockets never opened probes one at once when it opens (the network may
 * have come back between the last WebSocket's failure and the HTTP attempt). Drops count
 * only while the WebSockets after them open: a drop followed by one that cannot open was
 * the network's doing, so outages do not add up to a fallback. So after an outage the page
 * is back on a WebSocket, not left on HTTP until the next probe.
 *
 * Knows nothing of documents: it moves JSON objects and reports open / message / close.
 * WebSocket, fallback channel, timers, clock and randomness are injectable for tests.
 */

/** Close codes after which reconnecting cannot help (protocol "Close codes"). */
export const FATAL_CLOSE_CODES = new Set([4401, 4404]);
/** Close codes that ask for a longer wait before reconnecting: flooding (4429), and too many
 * connections open for this user (4409; the others have to close first). */
export const SLOW_DOWN_CLOSE_CODES = new Set([4429, 4409]);
/** Close codes the server sends over a WebSocket that works (a refusal: flooding, too many
 * connections, a protocol error): never a reason to try the HTTP fallback. */
export const REFUSAL_CLOSE_CODES = new Set([4400, 4409, 4429]);

/**
 * Delay before reconnect attempt `attempt` (0-based): the first is quick, then doubling up to
 * the cap, with "equal jitter" (half fixed, half random) so that clients do not stampede.
 */
export function backoffDelay(attempt, random = Math.random, { first = 250, base = 500, cap = 10000 } = {}) {
  if (attempt <= 0) return Math.round(first * (0.5 + random() * 0.5));
  const ceiling = Math.min(cap, base * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export class Connection {
  constructor({
    url,
    onOpen = () => {},
    onMessage = () => {},
    onClose = () => {},
    onTransport = () => {},
    WebSocketImpl = globalThis.WebSocket,
    fallback = null, // (url) => a WebSocket look-alike over HTTP, or null for none
    fallbackUrl = null,
    timers = globalThis,
    now = () => Date.now(),
    random = Math.random,
    pingEvery = 10000,
    deadAfter = 25000,
    connectTimeout = 10000,
    failuresBeforeFallback = 2, // WebSockets in a row that never opened
    dropsBeforeFallback = 3, // WebSockets that opened and then dropped, within dropWindow
    dropWindow = 120000,
    probeEvery = 60000,
  }) {
    Object.assign(this, { url, onOpen, onMessage, onClose, WebSocketImpl, timers, now, random });
    Object.assign(this, { onTransport, fallback, fallbackUrl, probeEvery, dropWindow });
    this.failuresBeforeFallback = failuresBeforeFallback;
    this.dropsBeforeFallback = dropsBeforeFallback;
    this.transport = "websocket";
    this.failures = 0; // WebSockets in a row that never opened
    this.drops = []; // when opened WebSockets dropped
    this.verifyFallback = false; // probe a WebSocket as soon as the fallback opens
    this.probe = null;
    this.probeTimer = null;
    this.pingEvery = pingEvery;
    this.deadAfter = deadAfter;
    this.connectTimeout = connectTimeout;
    this.connectTimer = null;
    this.socket = null;
    this.open = false;
    this.attempt = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.lastPing = 0;
    this.pingId = 0;
    this.closeCode = null;
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  /** Close for good (no reconnect). */
  stop() {
    this.stopped = true;
    this.timers.clearTimeout(this.retryTimer);
    this.timers.clearTimeout(this.connectTimer);
    this._stopProbing();
    this._drop(1000);
  }

  /** Drop the current socket and reconnect at once (e.g. the browser came back online). */
  reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    if (this.socket && this.open) this._drop(4000, true);
    else {
      this.timers.clearTimeout(this.retryTimer);
      this._drop(4000, false);
      this._connect();
    }
  }

  /** Send a message if the socket is open; returns whether it went out. */
  send(message) {
    if (!this.open) return false;
    try {
      this.socket.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  _connect() {
    if (this.stopped) return;
    let socket;
    try {
      socket = this.transport === "http" ? this.fallback(this.fallbackUrl) : new this.WebSocketImpl(this.url);
    } catch {
      // Refused before it began (a blocked scheme, a policy): a failed attempt like any other.
      socket = { close() {} };
      this.timers.setTimeout(() => socket === this.socket && this._closed(1006), 0);
    }
    this.socket = socket;
    this.socketTransport = this.transport;
    this.lastHeard = this.now();
    this.timers.clearTimeout(this.connectTimer);
    this.connectTimer = this.timers.setTimeout(() => {
      // A connect that hangs (blackholed network) counts as a failed attempt.
      if (socket === this.socket && !this.open) this._drop(4408, true);
    }, this.connectTimeout);
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.timers.clearTimeout(this.connectTimer);
      this.open = true;
      this.lastHeard = this.now();
      this.lastPing = this.now();
      this._startHeartbeat();
      this.onOpen();
      if (this.socketTransport === "http" && this.verifyFallback) {
        // HTTP answers: do WebSockets still fail now? Only then are they really blocked.
        this.verifyFallback = false;
        this._probeOnce();
      }
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = this.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && message.type === "joined") this.attempt = 0; // a healthy connection
      this.onMessage(message);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this._closed(event.code);
    };
    socket.onerror = () => {}; // onclose follows
  }

  /** Forget the socket (its late events are ignored) and report the close. */
  _drop(code, reconnect = false) {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    try {
      socket.close();
    } catch {
      // already closing
    }
    if (reconnect) this._closed(code, socket);
    else {
      this._stopHeartbeat();
      this.open = false;
    }
  }

  _closed(code) {
    const wasOpen = this.open;
    this.open = false;
    this.socket = null;
    this.closeCode = code;
    this._stopHeartbeat();
    const fatal = FATAL_CLOSE_CODES.has(code);
    // 4000 is our own reconnectNow(), a refusal the server's: neither the network's doing.
    const failed = !fatal && code !== 4000 && !REFUSAL_CLOSE_CODES.has(code);
    const fellBack = failed && !this.stopped && this._countFailure(wasOpen);
    if (!this.stopped && !fatal) {
      // Flooding or too many connections means waiting longer; the fallback's first try goes
      // at once (it is a fresh start, not one more failed attempt); otherwise the usual backoff.
      const attempt = SLOW_DOWN_CLOSE_CODES.has(code) ? Math.max(this.attempt, 4) : this.attempt;
      const delay = backoffDelay(fellBack ? 0 : attempt, this.random);
      this.attempt = attempt + 1;
      this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = this.timers.setTimeout(() => this._connect(), delay);
    }
    this.onClose({ code, wasOpen, fatal, willRetry: !this.stopped && !fatal });
  }

  /**
   * Called after a connection closed on its own. Switches to the fallback when WebSockets
   * have failed often enough (returns true then), and back to WebSockets when the fallback
   * failed before it opened.
   */
  _countFailure(wasOpen) {
    if (this.socketTransport === "http") {
      // HTTP does not answer either: the network or the server is down, and WebSockets may
      // work when it is back. The attempts' backoff goes on growing.
      if (!wasOpen) {
        this._stopProbing();
        this._switch("websocket");
      }
      return false;
    }
    if (!this.fallback || !this.fallbackUrl) return false;
    const now = this.now();
    if (wasOpen) {
      this.failures = 0;
      this.drops = this.drops.filter((at) => now - at < this.dropWindow);
      this.drops.push(now);
    } else {
      this.failures += 1;
      // A WebSocket that cannot even open after one dropped means the network or the
      // server went away: those drops were its doing, not a proxy's that cuts WebSockets.
      this.drops = [];
    }
    const neverOpened = this.failures >= this.failuresBeforeFallback;
    if (!neverOpened && this.drops.length < this.dropsBeforeFallback) return false;
    this._switch("http");
    // WebSockets that open and then drop are not checked again at once: one would open.
    this.verifyFallback = neverOpened;
    this._startProbing();
    return true;
  }

  _switch(transport) {
    if (this.transport === transport) return;
    this.transport = transport;
    this.failures = 0;
    this.drops = [];
    this.verifyFallback = false;
    this.onTransport(transport);
  }

  /** On the fallback: try a WebSocket now and then, and go back to it when one opens. */
  _startProbing() {
    this._stopProbing();
    this.probeTimer = this.timers.setInterval(() => this._probeOnce(), this.probeEvery);
  }

  _stopProbing() {
    if (this.probeTimer !== null) this.timers.clearInterval(this.probeTimer);
    this.probeTimer = null;
    if (this.probe) this._endProbe(this.probe);
  }

  _probeOnce() {
    if (this.stopped || this.transport !== "http" || this.probe) return;
    let probe;
    try {
      probe = new this.WebSocketImpl(this.url);
    } catch {
      return;
    }
    this.probe = probe;
    const giveUp = this.timers.setTimeout(() => this._endProbe(probe), this.connectTimeout);
    probe.onopen = () => {
      this.timers.clearTimeout(giveUp);
      this._endProbe(probe);
      if (this.stopped || this.transport !== "http") return;
      this._stopProbing();
      this._switch("websocket");
      this.reconnectNow();
    };
    probe.onclose = () => {
      this.timers.clearTimeout(giveUp);
      this._endProbe(probe);
    };
    probe.onerror = () => {};
  }

  _endProbe(probe) {
    if (this.probe !== probe) return;
    this.probe = null;
    try {
      probe.close();
    } catch {
      // already closed
    }
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    const every = Math.min(1000, this.pingEvery);
    this.heartbeat = this.timers.setInterval(() => this._beat(), every);
  }

  _stopHeartbeat() {
    if (this.heartbeat !== null) this.timers.clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  _beat() {
    if (!this.open) return;
    const now = this.now();
    if (now - this.lastHeard >= this.deadAfter) {
      // Silent too long: the socket is dead even if the browser has not noticed yet.
      this._drop(4408, true);
      return;
    }
    if (now - this.lastPing >= this.pingEvery) {
      this.lastPing = now;
      this.pingId += 1;
      this.send({ type: "ping", id: this.pingId });
    }
  }
}
