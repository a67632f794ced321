/**
 * What the status pill says. Pure: the page passes what it knows, gets text and a class
 * (the classes match static/css/app.css: saved, saving, offline, reconnecting, readonly).
 */

export function describeStatus(facts) {
  const status = describeState(facts);
  // Say so when edits travel over the HTTP fallback: slower, and worth knowing about.
  if (facts.transport === "http" && facts.joined) status.text += " · over HTTP";
  return status;
}

function describeState({ joined, everJoined, readonly, pending, closeCode = null }) {
  if (closeCode === 4401) return { text: "Signed out — log in again", kind: "offline" };
  if (closeCode === 4404) return { text: "No access to this document", kind: "offline" };
  if (!joined) {
    if (pending > 0) {
      const noun = pending === 1 ? "change" : "changes";
      return { text: `Offline — ${pending} ${noun} pending`, kind: "offline" };
    }
    return everJoined
      ? { text: "Reconnecting…", kind: "reconnecting" }
      : { text: "Connecting…", kind: "reconnecting" };
  }
  if (readonly) return { text: "Read-only", kind: "readonly" };
  if (pending > 0) return { text: "Saving…", kind: "saving" };
  return { text: "Saved", kind: "saved" };
}

/** A size for people: "10 MB", "256 KB". */
export function formatBytes(bytes) {
  const units = [["MB", 1024 * 1024], ["KB", 1024]];
  for (const [unit, size] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}

/**
 * What to tell the person when the server refused one of their changes for good (the page
 * has undone it; docs/protocol.md "Error codes"). `limits` is what `joined` said.
 */
export function describeRefusal(code, limits = {}) {
  const undone = "It was not saved and has been taken out of the document.";
  if (code === "document_too_large") {
    const size = limits.document_bytes ? ` (${formatBytes(limits.document_bytes)})` : "";
    return `This document has reached its size limit${size}, so your last change would not fit. ${undone}`;
  }
  if (code === "too_large") return `Your last change was too large to send. ${undone}`;
  if (code === "bad_delta") return `Your last change holds content this editor cannot store. ${undone}`;
  return `Your last change could not be saved. ${undone}`;
}

export const STATUS_KINDS = ["saved", "saving", "offline", "reconnecting", "readonly"];
