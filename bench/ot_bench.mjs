// Node twin of bench/ot_bench.py: runs the workloads it wrote with quill-delta.
//
//   node bench/ot_bench.mjs WORKLOADS.json   (normally started by ot_bench.py)
//
// Prints {label: {rate, check}} as JSON; `check` lets the Python side confirm
// that both computed the same thing.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Delta = require('quill-delta');

function runCompose(work) {
  let doc = new Delta(work.doc);
  const edits = work.edits.map((ops) => new Delta(ops));
  const start = process.hrtime.bigint();
  for (const edit of edits) doc = doc.compose(edit);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { rate: edits.length / seconds, check: doc.length() };
}

function runTransform(work) {
  const pairs = work.pairs.map(([a, b]) => [new Delta(a), new Delta(b)]);
  let check = 0;
  const start = process.hrtime.bigint();
  for (const [a, b] of pairs) {
    check += a.transform(b, true).ops.length + b.transform(a, false).ops.length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { rate: pairs.length / seconds, check };
}

const workloads = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const results = {};
for (const [label, work] of Object.entries(workloads)) {
  const run = work.kind === 'compose' ? runCompose : runTransform;
  run(work); // warm-up: let the JIT compile before measuring
  const runs = [run(work), run(work), run(work)];
  results[label] = runs.reduce((best, r) => (r.rate > best.rate ? r : best));
}
console.log(JSON.stringify(results));
