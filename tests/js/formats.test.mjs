// What the page gives Quill from stored content, and the values it makes for Quill's formats
// (static/js/formats.js against static/js/formats.json, the file the server checks too).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import Delta from "quill-delta";

import {
  compileSchema,
  editorDelta,
  hexColor,
  linkTarget,
  PLACEHOLDER,
  quillFormats,
} from "../../static/js/formats.js";

const FORMATS = JSON.parse(readFileSync(new URL("../../static/js/formats.json", import.meta.url)));
const SCHEMA = compileSchema(FORMATS);

test("the schema allows what the server allows, strictly typed", () => {
  const { bold, header, list, color, link } = SCHEMA.attributes;
  assert.ok(bold(true) && !bold(1) && !bold("true") && !bold(false));
  assert.ok(header(1) && header(3) && !header(4) && !header(true) && !header("1"));
  assert.ok(list("checked") && !list("check"));
  assert.ok(color("#e60000") && color("#ABCDEF") && !color("red") && !color("#fff"));
  assert.ok(!color("#ff0000\n"));
  assert.ok(link("https://a.b/c") && link("mailto:a@b.c") && link("tel:+1"));
  assert.ok(!link("javascript:alert(1)") && !link("example.com") && !link("https://a b"));
  assert.ok(!link(`https://${"x".repeat(2048)}`));
});

test("Quill registers the schema's formats and the placeholder, nothing else", () => {
  const names = quillFormats(SCHEMA);
  assert.deepEqual(names.slice(0, -1), Object.keys(FORMATS.attributes));
  assert.equal(names.at(-1), PLACEHOLDER);
});

test("known content is given to Quill unchanged (the same array)", () => {
  const ops = [
    { insert: "Title" },
    { insert: "\n", attributes: { header: 1 } },
    { insert: "x", attributes: { bold: true, color: "#123456", link: "https://a.b" } },
    { retain: 4, attributes: { bold: null, list: "bullet" } },
    { delete: 2 },
  ];
  assert.equal(editorDelta(ops, SCHEMA), ops);
});

test("an unknown embed becomes a placeholder of the same length", () => {
  const ops = [{ insert: "a" }, { insert: { formula: "e^x" }, attributes: { bold: true } }];
  const shown = editorDelta(ops, SCHEMA);
  assert.deepEqual(shown, [
    { insert: "a" },
    { insert: { [PLACEHOLDER]: "formula" }, attributes: { bold: true } },
  ]);
  assert.equal(new Delta(shown).length(), new Delta(ops).length());
  assert.deepEqual(ops[1], { insert: { formula: "e^x" }, attributes: { bold: true } }); // untouched
});

test("unknown attributes and values are dropped from inserts, nulled on retains", () => {
  const ops = [
    { insert: "a", attributes: { font: "serif", bold: true } },
    { insert: "\n", attributes: { header: 7 } },
    { retain: 3, attributes: { size: "huge", color: "red", italic: true } },
  ];
  assert.deepEqual(editorDelta(ops, SCHEMA), [
    { insert: "a", attributes: { bold: true } },
    { insert: "\n" },
    { retain: 3, attributes: { color: null, italic: true } },
  ]);
});

// A small seeded generator: stored documents with unknown content, and edits on them.
function random(seed) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}
const pick = (rand, items) => items[Math.floor(rand() * items.length)];
const ATTRS = [
  null,
  { bold: true },
  { font: "serif" },
  { color: "red" },
  { color: "#00ff00" },
  { header: 7 },
  { header: 2 },
  { italic: true, size: "huge" },
];

function randomDoc(rand) {
  const doc = new Delta();
  const count = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < count; i += 1) {
    const embed = rand() < 0.3;
    const insert = pick(rand, embed ? [{ formula: "x" }, { image: "y" }] : ["ab", "c\n", "\n"]);
    doc.insert(insert, pick(rand, ATTRS) || undefined);
  }
  return doc.insert("\n");
}

function randomEdit(rand, length) {
  const edit = new Delta();
  let at = 0;
  while (at < length && rand() < 0.8) {
    const step = 1 + Math.floor(rand() * Math.min(3, length - at));
    const kind = rand();
    const attributes = pick(rand, [...ATTRS, { bold: null }, { color: null }]) || undefined;
    if (kind < 0.4) edit.retain(step, attributes);
    else if (kind < 0.6) edit.delete(step);
    else {
      edit.insert(pick(rand, ["z", { formula: "q" }]), pick(rand, ATTRS) || undefined);
      continue;
    }
    at += step;
  }
  return edit;
}

test("what Quill shows stays the stored document as shown, edit after edit", () => {
  // Quill applies what it is given (edits included) through editorDelta; its content must
  // then equal the stored document passed through editorDelta, or the page would see drift.
  // (Pushed op by op so that runs which became alike merge, as in Quill's own content.)
  const shown = (delta) =>
    editorDelta(delta.ops, SCHEMA).reduce((merged, op) => merged.push(op), new Delta());
  for (let seed = 1; seed <= 300; seed += 1) {
    const rand = random(seed);
    let stored = randomDoc(rand);
    let editor = shown(stored);
    for (let step = 0; step < 5; step += 1) {
      const edit = randomEdit(rand, stored.length());
      stored = stored.compose(edit);
      editor = editor.compose(shown(edit));
      assert.deepEqual(editor.ops, shown(stored).ops, `seed ${seed} step ${step}`);
    }
  }
});

test("colors become #rrggbb, or nothing when transparent or unknown", () => {
  assert.equal(hexColor("#E60000"), "#e60000");
  assert.equal(hexColor("#abc"), "#aabbcc");
  assert.equal(hexColor("rgb(1, 2, 255)"), "#0102ff");
  assert.equal(hexColor("rgba(1, 2, 3, 0.5)"), "#010203");
  assert.equal(hexColor("rgba(1, 2, 3, 0)"), null);
  assert.equal(hexColor("inherit"), null);
  assert.equal(hexColor(""), null);
  assert.equal(hexColor("red", (name) => (name === "red" ? "#ff0000" : null)), "#ff0000");
  assert.ok(SCHEMA.attributes.color(hexColor("rgb(300, 0, 0)")));
});

test("links get a scheme the schema allows, or none", () => {
  const allowed = SCHEMA.attributes.link;
  assert.equal(linkTarget("https://a.b/c", allowed), "https://a.b/c");
  assert.equal(linkTarget(" example.com/x ", allowed), "https://example.com/x");
  assert.equal(linkTarget("ada@example.com", allowed), "mailto:ada@example.com");
  assert.equal(linkTarget("HTTPS://A.B", allowed), "https://A.B");
  assert.equal(linkTarget("javascript:alert(1)", allowed), null);
  assert.equal(linkTarget("data:text/html,x", allowed), null);
  assert.equal(linkTarget("/relative", allowed), null);
  assert.equal(linkTarget("#top", allowed), null);
  assert.equal(linkTarget("", allowed), null);
  assert.equal(linkTarget(null, allowed), null);
});
