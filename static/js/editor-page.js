/**
 * The document page: Quill in #editor, kept in sync over the WebSocket protocol.
 *
 * Wiring only: the protocol state lives in sync.js, the socket in connection.js, cursors and
 * the "Here now" list in presence.js, the status wording in status.js.
 */
import QuillCursors from "quill-cursors";

import { Connection } from "./connection.js";
import { EventChannel } from "./event-channel.js";
import {
  compileSchema,
  editorDelta,
  hexColor,
  linkTarget,
  PLACEHOLDER,
  quillFormats,
} from "./formats.js";
import FORMATS from "./formats.json" with { type: "json" };
import { Presence } from "./presence.js";
import { describeRefusal, describeStatus, STATUS_KINDS } from "./status.js";
import { SyncClient } from "./sync.js";

const Quill = window.Quill;
const Delta = Quill.import("delta");
Quill.register("modules/cursors", QuillCursors);

const SCHEMA = compileSchema(FORMATS);
registerFormats();

const PRESENCE_EVERY_MS = 120;
const TICK_EVERY_MS = 2000;

const TOOLBAR = [
  [{ header: [1, 2, 3, false] }],
  ["bold", "italic", "underline", "strike"],
  [{ color: [] }],
  [{ list: "ordered" }, { list: "bullet" }, { list: "check" }],
  ["blockquote", "code-block"],
  ["link"],
  ["clean"],
];

function start() {
  const container = document.getElementById("editor");
  if (!container) return;
  const statusEl = document.getElementById("status");
  const titleEl = document.getElementById("doc-title");
  const canEdit = container.dataset.canEdit === "true";

  const quill = new Quill(container, {
    theme: "snow",
    placeholder: canEdit ? "Start writing…" : "",
    // Only what the server accepts: pasted fonts, sizes or images are dropped, not refused.
    formats: quillFormats(SCHEMA),
    modules: {
      toolbar: TOOLBAR,
      history: { delay: 500, maxStack: 200, userOnly: true },
      cursors: { transformOnTextChange: false, hideDelayMs: 5000, hideSpeedMs: 300 },
    },
  });
  quill.disable(); // until the document has arrived
  // A copied placeholder is not content, and pasted values the server would refuse (a
  // color "inherit", a relative link) are dropped here rather than refused with the paste.
  quill.clipboard.addMatcher(`.${PLACEHOLDER}`, () => new Delta());
  quill.clipboard.addMatcher(Node.ELEMENT_NODE, (_node, delta) => shown(delta));
  const wrapper = container.parentElement;

  const view = {
    joined: false,
    everJoined: false,
    readonlyByServer: !canEdit,
    closeCode: null,
  };
  const readonly = () => !canEdit || view.readonlyByServer;
  const log = []; // the last errors from the server, for debugging
  let applying = false; // inside updateContents of a remote change
  let drifted = false; // a user change was reported while applying

  const client = new SyncClient({
    Delta,
    send: (message) => connection.send(message),
    apply: applyToEditor,
    onChange: () => {
      renderStatus();
      presence.changed();
    },
  });

  const connection = new Connection({
    url: socketUrl(container.dataset.wsPath),
    fallbackUrl: container.dataset.livePath,
    fallback: (url) => new EventChannel(url, { csrfToken: container.dataset.csrfToken }),
    onTransport: () => renderStatus(),
    onOpen: () => connection.send(client.hello()),
    onMessage: receive,
    onClose: (info) => {
      view.joined = false;
      if (info.fatal) view.closeCode = info.code;
      const hint = client.disconnected(info.code);
      if (hint) act(hint);
      applyEditable();
      renderStatus();
    },
  });

  const presence = new Presence({
    client,
    cursors: quill.getModule("cursors"),
    list: document.getElementById("presence"),
  });

  /** Apply a delta from the sync client, keeping the local selection where it belongs. */
  function applyToEditor(delta) {
    applying = true;
    let selection = null;
    try {
      selection = quill.hasFocus() ? quill.getSelection() : null;
      quill.updateContents(shown(delta), "api");
    } finally {
      applying = false;
    }
    if (drifted) {
      drifted = false;
      const drift = shown(client.localDocument()).diff(quill.getContents());
      if (drift.ops.length) client.localEdit(drift);
    }
    if (selection) {
      const start = delta.transformPosition(selection.index);
      const end = delta.transformPosition(selection.index + selection.length);
      quill.setSelection(start, Math.max(0, end - start), "silent");
    }
  }

  function receive(message) {
    // Typing the browser has done but Quill has not reported yet (its MutationObserver runs
    // later) must reach the sync client first: otherwise Quill would report it from inside
    // the next updateContents, on a document the client already considers changed.
    quill.update("user");
    switch (message.type) {
      case "joined":
        view.joined = true;
        view.everJoined = true;
        view.closeCode = null;
        view.readonlyByServer = Boolean(message.readonly);
        if (message.title) setTitle(message.title);
        client.receive(message);
        presence.joined(message.you, message.presence);
        applyEditable();
        sendPresence();
        break;
      case "presence":
        presence.update(message);
        break;
      case "leave":
        presence.leave(message.session);
        break;
      case "title":
        setTitle(message.title);
        break;
      case "lock":
        view.readonlyByServer = Boolean(message.readonly);
        applyEditable();
        break;
      case "error":
        handleError(message);
        break;
      case "pong":
        break;
      default:
        client.receive(message); // ack, ops
    }
    renderStatus();
  }

  function handleError(message) {
    log.push(message);
    if (log.length > 20) log.shift();
    const hint = client.receive(message);
    if (!hint) {
      if (window.console) console.warn("tandem: server refused a message", message);
      return;
    }
    act(hint);
  }

  /** Do what the sync client's hint (from an error, a close or a tick) asks of the page. */
  function act(hint) {
    if (hint.action === "retry-later") {
      setTimeout(() => client.resendInflight(hint.seq), hint.after);
    } else if (hint.action === "read-only") {
      view.readonlyByServer = true;
      applyEditable();
    } else if (hint.action === "reconnect-later") {
      setTimeout(() => connection.reconnectNow(), hint.after);
    } else if (hint.action === "resync" || hint.action === "reconnect") {
      connection.reconnectNow();
    } else if (hint.action === "dropped") {
      showNotice(describeRefusal(hint.code, client.limits));
    }
  }

  const notice = document.getElementById("notice");
  function showNotice(message) {
    if (!notice) return;
    document.getElementById("notice-text").textContent = message;
    notice.hidden = false;
  }
  document.getElementById("notice-close")?.addEventListener("click", () => {
    notice.hidden = true;
  });

  function applyEditable() {
    const editable = view.joined && !readonly();
    // Offline editing goes on once the document has been loaded; viewers never edit.
    const offlineEditable =
      !view.joined && view.everJoined && !readonly() && view.closeCode === null;
    quill.enable(editable || offlineEditable);
    wrapper.classList.toggle("is-readonly", readonly());
  }

  function setTitle(title) {
    if (titleEl) titleEl.textContent = title;
    document.title = `${title} · Tandem`;
  }

  function renderStatus() {
    const { text, kind } = describeStatus({
      joined: view.joined,
      everJoined: view.everJoined,
      readonly: readonly(),
      pending: client.pendingCount(),
      closeCode: view.closeCode,
      transport: connection.transport,
    });
    if (statusEl.textContent !== text) statusEl.textContent = text;
    for (const name of STATUS_KINDS) statusEl.classList.toggle(name, name === kind);
    statusEl.dataset.pending = String(client.pendingCount());
    statusEl.dataset.transport = connection.transport;
  }

  // Our cursor, throttled, on the committed version it refers to.
  let presenceTimer = null;
  let presenceLast = 0;
  function sendPresence() {
    if (!view.joined || client.version === null) return;
    const range = quill.getSelection();
    if (!range) return; // keep showing where we were while the editor is not focused
    const selection = client.rangeToCommitted(range);
    connection.send({ type: "presence", selection, version: client.version });
    presenceLast = Date.now();
  }
  function presenceSoon() {
    if (presenceTimer !== null) return;
    const wait = Math.max(0, PRESENCE_EVERY_MS - (Date.now() - presenceLast));
    presenceTimer = setTimeout(() => {
      presenceTimer = null;
      sendPresence();
    }, wait);
  }

  quill.on("text-change", (delta, _old, source) => {
    if (source === "user" && applying) {
      // Should not happen (see receive()): a local change reported in the middle of a
      // remote one. It is taken from the editor's content once the remote one is done.
      drifted = true;
      return;
    }
    if (source === "user") {
      client.localEdit(delta);
      presenceSoon();
    }
    presence.changed();
  });
  quill.on("selection-change", (range, _old, source) => {
    if (range && source !== "silent") presenceSoon();
  });

  window.addEventListener("beforeunload", (event) => {
    if (client.pendingCount() > 0) {
      event.preventDefault();
      event.returnValue = ""; // older browsers need it set
    }
  });
  window.addEventListener("online", () => {
    if (!view.joined) connection.reconnectNow();
  });
  setInterval(() => {
    const hint = client.tick();
    if (hint) act(hint);
  }, TICK_EVERY_MS);

  // For the end-to-end tests and for debugging from the console.
  window.tandem = {
    log,
    quill,
    client,
    connection,
    presence,
    /** True when the editor shows exactly the committed document plus our pending edits. */
    consistent: () => quill.getContents().diff(shown(client.localDocument())).ops.length === 0,
  };

  renderStatus();
  connection.start();
}

/** A delta as the editor shows it: see editorDelta in formats.js. */
function shown(delta) {
  const ops = editorDelta(delta.ops, SCHEMA);
  return ops === delta.ops ? delta : new Delta(ops);
}

/**
 * Quill's color, link and a placeholder embed, made to give only what formats.json allows:
 * a pasted "red" or "rgb(...)" becomes #rrggbb, a typed "example.com" https://example.com.
 */
function registerFormats() {
  const ColorStyle = Quill.import("attributors/style/color");
  class Color extends ColorStyle.constructor {
    value(node) {
      return hexColor(super.value(node), cssColor) || "";
    }
  }
  const { Scope } = Quill.import("parchment");
  Quill.register("formats/color", new Color("color", "color", { scope: Scope.INLINE }), true);

  const Link = Quill.import("formats/link");
  const allowed = SCHEMA.attributes.link;
  class SafeLink extends Link {
    static sanitize(url) {
      return linkTarget(url, allowed) || Link.SANITIZED_URL;
    }
    static formats(node) {
      return linkTarget(node.getAttribute("href"), allowed) || undefined;
    }
  }
  Quill.register("formats/link", SafeLink, true);

  // Content this editor cannot show (written before the server checked formats): a visible
  // stand-in of the same length, so that the document stays editable around it.
  const Embed = Quill.import("blots/embed");
  class Placeholder extends Embed {
    static blotName = PLACEHOLDER;
    static tagName = "SPAN";
    static className = PLACEHOLDER;
    static create(kind) {
      const node = super.create();
      node.dataset.kind = kind;
      node.textContent = `[unsupported content: ${kind}]`;
      node.title = "This editor cannot show this part of the document.";
      return node;
    }
    static value(node) {
      return node.dataset.kind;
    }
  }
  Quill.register(Placeholder, true);
}

/** Any CSS color the browser knows, as a canvas gives it back (#rrggbb, rgba()), or null. */
function cssColor(text) {
  const context = (cssColor.context ||= document.createElement("canvas").getContext("2d"));
  // A canvas ignores what is not a color: only a value that replaces both is one.
  context.fillStyle = "#000000";
  context.fillStyle = text;
  const first = context.fillStyle;
  context.fillStyle = "#ffffff";
  context.fillStyle = text;
  return first === context.fillStyle ? first : null;
}

function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

start();
