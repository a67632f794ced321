// The load generator's plain-text transform (bench/text-ot.mjs) against quill-delta itself.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

import { transform } from "../../bench/text-ot.mjs";

const Delta = createRequire(import.meta.url)("quill-delta");

let seed = 7;
const random = (n) => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
};

function randomDelta(size) {
  const delta = new Delta();
  let left = size;
  while (left > 0 || random(4) === 0) {
    const kind = random(3);
    const count = 1 + random(Math.max(1, Math.min(left, 4)));
    if (kind === 0) delta.insert("xyzw".slice(0, count));
    else if (kind === 1 && left > 0) {
      delta.retain(Math.min(count, left));
      left -= Math.min(count, left);
    } else if (left > 0) {
      delta.delete(Math.min(count, left));
      left -= Math.min(count, left);
    }
    if (random(5) === 0) break;
  }
  return delta;
}

test("matches quill-delta's transform on random plain-text deltas, both priorities", () => {
  for (let i = 0; i < 5000; i += 1) {
    const size = random(12);
    const a = randomDelta(size);
    const b = randomDelta(size);
    for (const priority of [true, false]) {
      assert.deepEqual(transform(a.ops, b.ops, priority), a.transform(b, priority).ops);
    }
  }
});
