// Cutting a large edit into edits under the server's limits (static/js/split.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { deltaBudget, fittingPrefix, jsonBytes, splitHead } from "../../static/js/split.js";
import { Delta } from "./helpers.mjs";

/** Every part of `delta` in order, as a client sends them one ack at a time. */
function parts(delta, budget) {
  const out = [];
  let rest = delta;
  while (rest) {
    const cut = splitHead(Delta, rest, budget);
    out.push(cut.head);
    rest = cut.rest;
    assert.ok(out.length < 10000, "no progress");
  }
  return out;
}

function assertParts(delta, budget, base) {
  const cut = parts(delta, budget);
  for (const part of cut) {
    assert.ok(jsonBytes(part.ops) <= budget.maxBytes, `${jsonBytes(part.ops)} bytes`);
    assert.ok(part.ops.length <= budget.maxOps);
  }
  const applied = cut.reduce((doc, part) => doc.compose(part), base);
  assert.deepEqual(applied.ops, base.compose(delta).ops);
  return cut;
}

describe("splitHead", () => {
  test("an edit that fits goes whole", () => {
    const delta = new Delta().retain(3).insert("hi");
    assert.deepEqual(splitHead(Delta, delta, { maxBytes: 100, maxOps: 10 }), { head: delta, rest: null });
  });

  test("5 MB of pasted text becomes parts under the message limit that make the paste", () => {
    const line = "The quick brown fox jumps over the lazy dog.\n";
    const paste = line.repeat(Math.ceil((5 * 1024 * 1024) / line.length));
    const base = new Delta().insert("Title\n");
    const budget = deltaBudget({ message_bytes: 256 * 1024, delta_ops: 10000, delta_chars: 1e6 });
    const cut = assertParts(new Delta().retain(5).insert(paste), budget, base);
    // Newlines travel as two bytes ("\n"), so a little over twenty parts, none wasted.
    assert.ok(cut.length >= 20 && cut.length <= 24, `${cut.length} parts`);
  });

  test("multi-byte text, escapes and emoji are measured in UTF-8 and never cut in half", () => {
    const text = 'é€"\\\u0001😀'.repeat(3000);
    const base = new Delta().insert("\n");
    const cut = assertParts(new Delta().insert(text), { maxBytes: 5000, maxOps: 100 }, base);
    assert.ok(cut.length > 5);
    for (const part of cut) {
      for (const op of part.ops) {
        if (typeof op.insert !== "string") continue;
        assert.ok(!/[\ud800-\udbff]$/.test(op.insert), "ends in half a character");
        assert.ok(!/^[\udc00-\udfff]/.test(op.insert), "starts with half a character");
      }
    }
  });

  test("formatted text with many ops is cut by bytes and by op count", () => {
    const base = new Delta().insert("0123456789\n");
    const delta = new Delta().retain(2).delete(3);
    for (let i = 0; i < 3000; i += 1) {
      delta.insert(`word ${i} `, i % 2 ? { bold: true } : { link: `https://example.com/${i}` });
    }
    delta.retain(2, { italic: true });
    assertParts(delta, { maxBytes: 20000, maxOps: 500 }, base);
    assertParts(delta, { maxBytes: 1e6, maxOps: 100 }, base);
  });

  test("an op that cannot fit even alone is sent alone, for the server to refuse", () => {
    const delta = new Delta().insert({ image: "x".repeat(500) }).insert("after");
    const { head, rest } = splitHead(Delta, delta, { maxBytes: 100, maxOps: 10 });
    assert.deepEqual(head.ops, [{ insert: { image: "x".repeat(500) } }]);
    assert.deepEqual(rest.ops, [{ retain: 1 }, { insert: "after" }]);
  });
});

describe("fittingPrefix", () => {
  test("takes as many code units as fit the room in UTF-8 bytes", () => {
    assert.equal(fittingPrefix("abcdef", 4), 4);
    assert.equal(fittingPrefix("ééé", 4), 2);
    assert.equal(fittingPrefix("a😀", 4), 1); // the emoji's 4 bytes do not fit after "a"
    assert.equal(fittingPrefix("\n\n\n", 5), 2);
    assert.equal(fittingPrefix("abc", 0), 0);
  });
});
