/**
 * Cutting one large edit (a big paste) into edits that each fit the server's message limits.
 *
 * The server refuses a message over `limits.message_bytes` UTF-8 bytes or a delta of more than
 * `limits.delta_ops` ops (docs/protocol.md, `limits` in `joined`). `splitHead` takes the first
 * part of a delta that fits and leaves the rest as a delta to apply after it, so that the
 * parts, committed in order, make exactly the original edit. Pure: the Delta class is passed in.
 */

const encoder = new TextEncoder();

/** What `submit` adds around its delta, with room for the largest seq and version. */
const ENVELOPE_BYTES = 128;

/** UTF-8 bytes of a value as JSON, as it travels in a frame. */
export function jsonBytes(value) {
  return encoder.encode(JSON.stringify(value)).length;
}

/** The budget for one delta's ops under the server's limits. */
export function deltaBudget(limits) {
  const bytes = Math.max(1024, limits.message_bytes - ENVELOPE_BYTES);
  // Every character the server counts takes at least one byte of JSON.
  return { maxBytes: Math.min(bytes, limits.delta_chars), maxOps: limits.delta_ops };
}

function outputLength(op) {
  if (op.retain !== undefined) return op.retain;
  if (op.insert !== undefined) return typeof op.insert === "string" ? op.insert.length : 1;
  return 0; // a delete leaves nothing behind
}

function isHighSurrogate(code) {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * The longest prefix of `text` (in UTF-16 code units, never half a character) whose JSON
 * string, quotes excepted, takes at most `room` bytes.
 */
export function fittingPrefix(text, room) {
  if (room <= 0) return 0;
  let n = Math.min(text.length, room); // each code unit is at least one byte
  for (;;) {
    const bytes = jsonBytes(text.slice(0, n)) - 2;
    if (bytes <= room) break;
    // Shrink in proportion (multi-byte characters, escapes), at least by one.
    n = Math.min(n - 1, Math.floor((n * room) / bytes));
    if (n <= 0) return 0;
  }
  if (n > 0 && n < text.length && isHighSurrogate(text.charCodeAt(n - 1))) n -= 1;
  return n;
}

/**
 * {head, rest}: `head` fits `maxBytes` (its ops as a JSON array) and `maxOps`, and
 * head.compose(rest) equals `delta`; `rest` is null when the whole delta fits. An op that
 * cannot fit even alone (an embed or formatting over the limit) is the whole head, for the
 * server to refuse.
 */
export function splitHead(Delta, delta, { maxBytes, maxOps }) {
  const ops = delta.ops;
  if (ops.length <= maxOps && jsonBytes(ops) <= maxBytes) return { head: delta, rest: null };
  const head = new Delta();
  let used = 2; // the array's brackets
  let produced = 0; // the length of what head leaves in the document, where rest starts
  let remainder = null; // the part of a text insert that did not fit
  let next = 0;
  for (; next < ops.length && head.ops.length < maxOps; next += 1) {
    const op = ops[next];
    const cost = jsonBytes(op) + (head.ops.length ? 1 : 0); // a comma between ops
    if (used + cost <= maxBytes) {
      head.push(op);
      used += cost;
      produced += outputLength(op);
      continue;
    }
    if (typeof op.insert === "string") {
      const empty = jsonBytes({ ...op, insert: "" }) + (head.ops.length ? 1 : 0);
      const n = fittingPrefix(op.insert, maxBytes - used - empty);
      if (n > 0) {
        head.push({ ...op, insert: op.insert.slice(0, n) });
        produced += n;
        remainder = { ...op, insert: op.insert.slice(n) };
        next += 1;
      }
    }
    break;
  }
  if (head.ops.length === 0) {
    head.push(ops[0]);
    produced = outputLength(ops[0]);
    next = 1;
  }
  const rest = new Delta().retain(produced);
  if (remainder) rest.push(remainder);
  for (let i = next; i < ops.length; i += 1) rest.push(ops[i]);
  return { head, rest };
}
