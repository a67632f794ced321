/**
 * The formats the editor registers (formats.json, which the server checks edits against too),
 * and what the page does with content outside them. Pure: no DOM, no Quill.
 *
 * A stored document may hold what the server no longer accepts (it was written before the
 * check): an embed Quill has no blot for throws on load and leaves the editor dead. So every
 * delta goes to Quill through editorDelta(), which swaps such embeds for a placeholder embed
 * of the same length (1) and drops what Quill would not render, keeping indexes unchanged.
 */

/** The placeholder embed's name; the server does not accept it, so it is never saved. */
export const PLACEHOLDER = "tandem-unknown";

/**
 * The schema from the parsed formats.json: {attributes, embeds} of name -> test(value).
 * @param {{attributes: object, embeds: object}} data
 */
export function compileSchema(data) {
  const compile = (rules) =>
    Object.fromEntries(Object.entries(rules).map(([name, rule]) => [name, ruleTest(rule)]));
  return { attributes: compile(data.attributes), embeds: compile(data.embeds) };
}

function ruleTest({ values = [], pattern, maxLength }) {
  // As the server: the whole value must match; lengths are UTF-16 code units.
  const regex = pattern === undefined ? null : new RegExp(`^(?:${pattern})$`, "u");
  return (value) =>
    values.includes(value) ||
    (regex !== null &&
      typeof value === "string" &&
      (maxLength === undefined || value.length <= maxLength) &&
      regex.test(value));
}

/** The names to give Quill's `formats` option: registered formats, embeds, the placeholder. */
export function quillFormats(schema) {
  return [...Object.keys(schema.attributes), ...Object.keys(schema.embeds), PLACEHOLDER];
}

/**
 * `ops` as the editor can show them, or `ops` itself when nothing needs to change.
 *
 * Unknown embeds become {[PLACEHOLDER]: kind}. On inserts, unknown attributes and values are
 * dropped. On retains, unknown attributes are dropped (Quill ignores them anyway) and an
 * unknown value of a known one becomes null, so that what Quill shows stays what the stored
 * document shows once passed through here: the value it sets is one the editor cannot show.
 */
export function editorDelta(ops, schema) {
  let changed = null;
  ops.forEach((op, index) => {
    const fixed = editorOp(op, schema);
    if (fixed !== op) {
      changed = changed || ops.slice();
      changed[index] = fixed;
    }
  });
  return changed || ops;
}

function editorOp(op, schema) {
  let insert = op.insert;
  if (insert !== null && typeof insert === "object") {
    const [kind] = Object.keys(insert);
    const allowed = schema.embeds[kind];
    if (!allowed || !allowed(insert[kind])) insert = { [PLACEHOLDER]: String(kind) };
  }
  const attributes = op.attributes && editorAttributes(op.attributes, schema, "retain" in op);
  if (insert === op.insert && attributes === op.attributes) return op;
  const fixed = "insert" in op ? { insert } : { retain: op.retain };
  if (attributes && Object.keys(attributes).length) fixed.attributes = attributes;
  return fixed;
}

function editorAttributes(attributes, schema, isRetain) {
  let fixed = null;
  for (const [name, value] of Object.entries(attributes)) {
    const allowed = schema.attributes[name];
    if (allowed && (value === null || allowed(value))) continue;
    fixed = fixed || { ...attributes };
    if (allowed && isRetain) fixed[name] = null;
    else delete fixed[name];
  }
  return fixed || attributes;
}

/**
 * A CSS color as #rrggbb, or null when it is none or fully transparent.
 * @param {string} value  e.g. "#abc", "rgb(1, 2, 3)", "rgba(1, 2, 3, 0.5)"
 * @param {Function} [resolve]  turns other CSS colors (names) into one of those forms
 */
export function hexColor(value, resolve = (text) => text) {
  if (typeof value !== "string" || !value.trim()) return null;
  const text = value.trim().toLowerCase();
  if (/^#[0-9a-f]{6}$/.test(text)) return text;
  const short = /^#([0-9a-f])([0-9a-f])([0-9a-f])$/.exec(text);
  if (short) return `#${short[1]}${short[1]}${short[2]}${short[2]}${short[3]}${short[3]}`;
  const rgb = /^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*([\d.]+)\s*)?\)$/.exec(text);
  if (rgb) {
    if (rgb[4] !== undefined && Number(rgb[4]) === 0) return null;
    const hex = rgb.slice(1, 4).map((part) => Math.min(255, Number(part)).toString(16));
    return `#${hex.map((part) => part.padStart(2, "0")).join("")}`;
  }
  const resolved = resolve(text);
  return resolved && resolved !== text ? hexColor(resolved) : null;
}

/**
 * A link target the schema allows, made from what a person typed or pasted, or null.
 * "example.com" becomes "https://example.com", "a@b.org" "mailto:a@b.org"; a scheme the
 * schema does not allow (javascript:, data:) or a relative path gives null.
 */
export function linkTarget(url, allowed) {
  if (typeof url !== "string") return null;
  const text = url.trim();
  if (allowed(text)) return text;
  const scheme = /^([a-z][a-z0-9+.-]*):(.*)$/is.exec(text);
  if (scheme) {
    const lowered = `${scheme[1].toLowerCase()}:${scheme[2]}`;
    return allowed(lowered) ? lowered : null;
  }
  if (!text || /^[/#?.]/.test(text)) return null;
  const guess = /^[^@/\s]+@[^@/\s]+$/.test(text) ? `mailto:${text}` : `https://${text}`;
  return allowed(guess) ? guess : null;
}
