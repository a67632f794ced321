/**
 * The HTTP fallback transport, shaped like a WebSocket so that connection.js drives both
 * alike: server-sent events down, POSTed lines up (docs/protocol.md, "HTTP fallback
 * transport").
 *
 * It has `onopen`, `onmessage({data})`, `onclose({code})`, `send(text)` and `close()`.
 * Messages go out in order: one POST at a time, carrying everything queued meanwhile.
 * EventSource and fetch are injectable for tests.
 */

/** Lines the server accepts in one POST. */
export const MAX_LINES_PER_POST = 200;

export class EventChannel {
  constructor(baseUrl, { csrfToken = "", EventSourceImpl = globalThis.EventSource, fetchImpl } = {}) {
    this.base = baseUrl;
    this.csrfToken = csrfToken;
    this.fetch = fetchImpl || ((...args) => globalThis.fetch(...args));
    this.token = null;
    this.queue = [];
    this.posting = false;
    this.posts = 0; // numbered, so the server keeps their order even across processes
    this.closed = false;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this.source = new EventSourceImpl(`${baseUrl}events/`);
    this.source.onmessage = (event) => this._event(event.data);
    // EventSource would retry on its own; connection.js owns retries and backoff instead.
    this.source.onerror = () => this._finish(1006);
  }

  send(text) {
    if (this.closed || this.token === null) throw new Error("the event channel is not open");
    this.queue.push(text);
    this._flush();
  }

  /** Closed by our side: no onclose, as with a WebSocket whose owner has let go of it. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.source.close();
  }

  _event(data) {
    if (this.closed) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "transport" && this.token === null) {
      this.token = message.token;
      if (this.onopen) this.onopen();
      return;
    }
    if (message.type === "close") {
      this._finish(message.code);
      return;
    }
    if (this.onmessage) this.onmessage({ data });
  }

  async _flush() {
    if (this.posting || this.closed || this.queue.length === 0) return;
    this.posting = true;
    const lines = this.queue.splice(0, MAX_LINES_PER_POST);
    this.posts += 1;
    let code = null;
    try {
      const response = await this.fetch(`${this.base}${this.token}/`, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "text/plain;charset=UTF-8",
          "X-CSRFToken": this.csrfToken,
          "X-Tandem-Post": String(this.posts),
        },
        body: lines.join("\n"),
      });
      if (!response.ok) code = await closeCodeFor(response);
    } catch {
      code = 1006; // the network failed; unacked edits are resent after the reconnect
    }
    this.posting = false;
    if (code !== null) this._finish(code);
    else this._flush();
  }

  _finish(code) {
    if (this.closed) return;
    this.closed = true;
    this.source.close();
    if (this.onclose) this.onclose({ code });
  }
}

/** What a refused POST means, as a WebSocket close code (protocol "Close codes"). */
async function closeCodeFor(response) {
  let reason = null;
  try {
    reason = (await response.json()).code;
  } catch {
    // not our JSON (a proxy's page, or CSRF's): retry as after a dropped connection
  }
  if (reason === "not_authenticated") return 4401;
  if (reason === "not_yours") return 4404;
  return 4000; // 410 no_session and the rest: open a new stream and rejoin
}
