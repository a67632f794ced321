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

export const STATUS_KINDS = ["saved", "saving", "offline", "reconnecting", "readonly"];
