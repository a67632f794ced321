// Writes the cross-language test vectors for collab.ot from quill-delta itself.
//
//   node tests/collab/vectors/generate.mjs
//
// Uses the quill-delta pinned in the repository's package.json (5.1.0, the one
// Quill 2 bundles).  handwritten.json covers each behaviour of quill-delta's own
// test suite with our own cases; random.json holds seeded random cases with
// formats (null values too), embeds, astral characters, combining marks and CJK.
// The Python tests replay both files and need no node.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const Delta = require('quill-delta');
const { version } = require('quill-delta/package.json');

const here = dirname(fileURLToPath(import.meta.url));
const SEED = 20240611;
const RANDOM_CASES = 2200;
const CHAINS = 60;

const D = () => new Delta();
const ops = (delta) => JSON.parse(JSON.stringify(delta.ops));

// --- handwritten cases -------------------------------------------------------

function handwritten() {
  const out = {
    builder: [], compose: [], transform: [], transform_position: [], invert: [],
    diff: [], diff_errors: [], slice: [], concat: [], length: [], change_length: [],
  };
  const builder = (name, steps) => {
    const delta = D();
    for (const [method, ...args] of steps) delta[method](...args);
    out.builder.push({ name, steps, expected: ops(delta) });
  };
  const compose = (name, a, b) =>
    out.compose.push({ name, a: ops(a), b: ops(b), expected: ops(a.compose(b)) });
  const transform = (name, a, b, priority) =>
    out.transform.push({ name, a: ops(a), b: ops(b), priority,
      expected: ops(a.transform(b, priority)) });
  const position = (name, delta, index, priority) =>
    out.transform_position.push({ name, delta: ops(delta), index, priority,
      expected: delta.transformPosition(index, priority) });
  const invert = (name, delta, base) =>
    out.invert.push({ name, delta: ops(delta), base: ops(base), expected: ops(delta.invert(base)) });
  const diff = (name, a, b) =>
    out.diff.push({ name, a: ops(a), b: ops(b), expected: ops(a.diff(b)) });
  const slice = (name, delta, start, end) =>
    out.slice.push({ name, delta: ops(delta), start, end: end ?? null,
      expected: ops(end === undefined ? delta.slice(start) : delta.slice(start, end)) });

  builder('empty ops are dropped', [['insert', ''], ['delete', 0], ['retain', 0]]);
  builder('insert text', [['insert', 'test']]);
  builder('insert text, null attributes', [['insert', 'test', null]]);
  builder('insert embed', [['insert', { image: 'x.png' }]]);
  builder('insert embed with attributes', [['insert', { image: 'x.png' }, { alt: 'Quill', width: 3 }]]);
  builder('insert text with attributes', [['insert', 'test', { bold: true }]]);
  builder('insert after delete goes first', [['delete', 1], ['insert', 'a']]);
  builder('insert after delete merges', [['insert', 'a'], ['delete', 1], ['insert', 'b']]);
  builder('insert after delete, no merge with embed', [['insert', { image: 'a' }], ['delete', 1], ['insert', 'a']]);
  builder('insert empty attributes', [['insert', 'a', {}]]);
  builder('delete positive', [['delete', 1]]);
  builder('retain length', [['retain', 2]]);
  builder('retain null attributes', [['retain', 2, null]]);
  builder('retain with attributes', [['retain', 1, { bold: true }]]);
  builder('retain empty attributes', [['retain', 2, {}], ['delete', 1]]);
  builder('consecutive deletes', [['delete', 2], ['push', { delete: 3 }]]);
  builder('consecutive text', [['insert', 'a'], ['push', { insert: 'b' }]]);
  builder('consecutive text, same attributes', [['insert', 'a', { bold: true }], ['push', { insert: 'b', attributes: { bold: true } }]]);
  builder('consecutive retains, same attributes', [['retain', 1, { bold: true }], ['push', { retain: 3, attributes: { bold: true } }]]);
  builder('consecutive text, other attributes', [['insert', 'a', { bold: true }], ['push', { insert: 'b' }]]);
  builder('consecutive retains, other attributes', [['retain', 1, { bold: true }], ['push', { retain: 3 }]]);
  builder('consecutive embeds never merge', [['insert', { image: 'a' }, { alt: 'd' }], ['push', { insert: { url: 'b' }, attributes: { alt: 'd' } }]]);
  builder('chop trailing retain', [['insert', 'Test'], ['retain', 4], ['chop']]);
  builder('chop keeps insert', [['insert', 'Test'], ['chop']]);
  builder('chop keeps formatted retain', [['insert', 'Test'], ['retain', 4, { bold: true }], ['chop']]);
  builder('emoji halves merge back', [['insert', '\ud83d'], ['insert', '\ude00x']]);
  builder('boolean and number attribute values differ', [['insert', 'a', { indent: 1 }], ['insert', 'b', { indent: true }]]);

  compose('insert + insert', D().insert('A'), D().insert('B'));
  compose('insert + retain', D().insert('A'), D().retain(1, { bold: true, color: 'red', font: null }));
  compose('insert + delete', D().insert('A'), D().delete(1));
  compose('delete + insert', D().delete(1), D().insert('B'));
  compose('delete + retain', D().delete(1), D().retain(1, { bold: true, color: 'red' }));
  compose('delete + delete', D().delete(1), D().delete(1));
  compose('retain + insert', D().retain(1, { color: 'blue' }), D().insert('B'));
  compose('retain + retain', D().retain(1, { color: 'blue' }), D().retain(1, { bold: true, color: 'red', font: null }));
  compose('retain + delete', D().retain(1, { color: 'blue' }), D().delete(1));
  compose('insert in middle of text', D().insert('Hello'), D().retain(3).insert('X'));
  compose('insert then delete', D().insert('Hello'), D().retain(3).insert('X').delete(1));
  compose('delete then insert', D().insert('Hello'), D().retain(3).delete(1).insert('X'));
  compose('format embed', D().insert({ image: 'x' }, { src: 'http://quilljs.com/image.png' }), D().retain(1, { alt: 'logo' }));
  compose('delete entire text', D().retain(4).insert('Hello'), D().delete(9));
  compose('retain past the end', D().insert('Hello'), D().retain(10));
  compose('retain embed', D().insert({ image: 'x' }), D().retain(1));
  compose('remove all attributes', D().insert('A', { bold: true }), D().retain(1, { bold: null }));
  compose('remove all embed attributes', D().insert({ image: 'x' }, { bold: true }), D().retain(1, { bold: null }));
  compose('split a formatted insert', D().insert('Test', { bold: true }), D().retain(1, { color: 'red' }).delete(2));
  compose('leading retain skips inserts',
    D().insert('A', { bold: true }).insert('B').insert('C', { bold: true }).delete(1), D().retain(3).insert('D'));
  compose('leading retain stops in a retain',
    D().insert('A', { bold: true }).insert('B').insert('C', { bold: true }).retain(5).delete(1), D().retain(4).insert('D'));
  compose('rest passes through', D().insert('A', { bold: true }).insert('B').insert('C', { bold: true }), D().delete(1));
  compose('rest passes through and joins',
    D().insert('A', { bold: true }).insert('B').insert('C', { bold: true }).insert('D').insert('E', { bold: true }).insert('F'),
    D().retain(1).delete(1));
  compose('insert between emoji halves', D().insert('a😀b'), D().retain(2).insert('X'));
  compose('delete half an emoji', D().insert('😀'), D().retain(1).delete(1));
  compose('retain with null onto retain keeps null', D().retain(3, { bold: true }), D().retain(2, { bold: null, italic: null }));
  compose('insert with null attributes into text', D().insert('ab'), D().retain(1).insert('x', { bold: null }));
  compose('unmerged input stays unmerged', new Delta([{ insert: 'a' }, { insert: 'b' }, { insert: 'c' }]), D().retain(1).insert('x'));

  transform('insert + insert, priority', D().insert('A'), D().insert('B'), true);
  transform('insert + insert, no priority', D().insert('A'), D().insert('B'), false);
  transform('insert + retain', D().insert('A'), D().retain(1, { bold: true, color: 'red' }), true);
  transform('insert + delete', D().insert('A'), D().delete(1), true);
  transform('delete + insert', D().delete(1), D().insert('B'), true);
  transform('delete + retain', D().delete(1), D().retain(1, { bold: true, color: 'red' }), true);
  transform('delete + delete', D().delete(1), D().delete(1), true);
  transform('retain + insert', D().retain(1, { color: 'blue' }), D().insert('B'), true);
  for (const priority of [true, false]) {
    transform(`retain + retain ${priority}`, D().retain(1, { color: 'blue' }), D().retain(1, { bold: true, color: 'red' }), priority);
    transform(`retain + retain reversed ${priority}`, D().retain(1, { bold: true, color: 'red' }), D().retain(1, { color: 'blue' }), priority);
    transform(`null formats ${priority}`, D().retain(2, { bold: null }), D().retain(3, { bold: true, italic: null }), priority);
    transform(`alternating edits ${priority}`, D().retain(2).insert('si').delete(5), D().retain(1).insert('e').delete(5).retain(1).insert('ow'), priority);
    transform(`alternating edits reversed ${priority}`, D().retain(1).insert('e').delete(5).retain(1).insert('ow'), D().retain(2).insert('si').delete(5), priority);
    transform(`conflicting appends ${priority}`, D().retain(3).insert('aa'), D().retain(3).insert('bb'), priority);
    transform(`prepend + append ${priority}`, D().insert('aa'), D().retain(3).insert('bb'), priority);
    transform(`append + prepend ${priority}`, D().retain(3).insert('bb'), D().insert('aa'), priority);
    transform(`trailing deletes ${priority}`, D().retain(2).delete(1), D().delete(3), priority);
    transform(`trailing deletes reversed ${priority}`, D().delete(3), D().retain(2).delete(1), priority);
    transform(`astral inserts ${priority}`, D().retain(1).insert('😀'), D().retain(1).insert('字').delete(2), priority);
  }
  transform('retain + delete', D().retain(1, { color: 'blue' }), D().delete(1), true);

  position('insert before position', D().insert('A'), 2, false);
  position('insert after position', D().retain(2).insert('A'), 1, false);
  position('insert at position, priority', D().retain(2).insert('A'), 2, true);
  position('insert at position, no priority', D().retain(2).insert('A'), 2, false);
  position('delete before position', D().delete(2), 4, false);
  position('delete after position', D().retain(4).delete(2), 2, false);
  position('delete across position', D().retain(1).delete(4), 2, false);
  position('insert and delete before position', D().retain(2).insert('A').delete(2), 4, false);
  position('insert before and delete across position', D().retain(2).insert('A').delete(4), 4, false);
  position('delete before and delete across position', D().delete(1).retain(1).delete(4), 4, false);
  position('emoji inserted before', D().insert('😀'), 0, false);
  position('emoji inserted at, priority', D().insert('😀'), 0, true);

  invert('insert', D().retain(2).insert('A'), D().insert('123456'));
  invert('delete', D().retain(2).delete(3), D().insert('123456'));
  invert('retain', D().retain(2).retain(3, { bold: true }), D().insert('123456'));
  invert('retain over other formats', D().retain(4, { italic: true }), D().insert('123').insert('4', { bold: true }));
  invert('combined',
    D().retain(2).delete(2).insert('AB', { italic: true }).retain(2, { italic: null, bold: true }).retain(2, { color: 'red' }).delete(1),
    D().insert('123', { bold: true }).insert('456', { italic: true }).insert('789', { color: 'red', bold: true }));
  invert('format an embed', D().retain(1, { bold: true }), D().insert({ image: 'a' }));
  invert('respects base formats',
    D().delete(1).retain(1, { header: 2 }).retain(1, { padding: 10, margin: 0 }),
    D().insert('\n').insert('\n', { header: 1 }).insert({ image: 'a' }, { margin: 10 }));
  invert('delete an emoji', D().retain(1).delete(2), D().insert('a😀b'));

  diff('insert', D().insert('A'), D().insert('AB'));
  diff('delete', D().insert('AB'), D().insert('A'));
  diff('same', D().insert('A'), D().insert('A'));
  diff('format', D().insert('A'), D().insert('A', { bold: true }));
  diff('object attributes', D().insert('A', { font: { family: 'Helvetica', size: '15px' } }), D().insert('A', { font: { family: 'Helvetica', size: '15px' } }));
  diff('embed integer match', D().insert({ embed: 1 }), D().insert({ embed: 1 }));
  diff('embed integer mismatch', D().insert({ embed: 1 }), D().insert({ embed: 2 }));
  diff('embed object match', D().insert({ image: 'http://quilljs.com' }), D().insert({ image: 'http://quilljs.com' }));
  diff('embed object mismatch', D().insert({ image: 'http://quilljs.com', alt: 'Overwrite' }), D().insert({ image: 'http://quilljs.com' }));
  diff('embed object change', D().insert({ image: 'http://quilljs.com' }), D().insert({ image: 'http://github.com' }));
  diff('embed against NUL text', D().insert({ embed: 1 }), D().insert('\0'));
  diff('inconvenient indexes', D().insert('12', { bold: true }).insert('34', { italic: true }), D().insert('123', { color: 'red' }));
  diff('combination', D().insert('Bad', { color: 'red' }).insert('cat', { color: 'blue' }), D().insert('Good', { bold: true }).insert('dog', { italic: true }));
  diff('remove format', D().insert('A', { color: 'red' }), D().insert('A', { bold: true }).insert('B'));
  diff('emoji and combining marks', D().insert('e\u0301😀漢字'), D().insert('😀e\u0301字👍🏽'));
  out.diff_errors.push({ name: 'retain in other', a: ops(D().insert('A')), b: ops(D().retain(1).insert('B')) });
  out.diff_errors.push({ name: 'retain in self', a: ops(D().retain(1).insert('B')), b: ops(D().insert('A')) });
  out.diff_errors.push({ name: 'delete in other', a: ops(D().insert('Test')), b: ops(D().delete(4)) });

  const mixed = D().insert('AB', { bold: true }).insert({ embed: 1 }).retain(2, { bold: null }).delete(1);
  out.length.push({ name: 'document', delta: ops(D().insert('AB', { bold: true }).insert({ embed: 1 })), expected: 3 });
  out.length.push({ name: 'mixed', delta: ops(mixed), expected: mixed.length() });
  out.length.push({ name: 'emoji counts two', delta: ops(D().insert('a😀é')), expected: 4 });
  const change = D().insert('AB', { bold: true }).retain(2, { bold: null }).delete(1);
  out.change_length.push({ name: 'mixed', delta: ops(change), expected: change.changeLength() });

  slice('start', D().retain(2).insert('A'), 2);
  slice('start and end chop', D().insert('0123456789'), 2, 7);
  slice('start and end, several ops', D().insert('0123', { bold: true }).insert('4567'), 3, 5);
  slice('start and end', D().retain(2).insert('A', { bold: true }).insert('B'), 2, 3);
  slice('no params', D().retain(2).insert('A', { bold: true }).insert('B'), 0);
  slice('split ops', D().insert('AB', { bold: true }).insert('C'), 1, 2);
  slice('split ops several times', D().insert('ABC', { bold: true }).insert('D'), 1, 2);
  slice('into an emoji', D().insert('a😀b'), 2, 4);

  const concat = (name, a, b) =>
    out.concat.push({ name, a: ops(a), b: ops(b), expected: ops(a.concat(b)) });
  concat('empty', D().insert('Test'), D());
  concat('unmergeable', D().insert('Test'), D().insert('!', { bold: true }));
  concat('mergeable', D().insert('Test', { bold: true }), D().insert('!', { bold: true }).insert('\n'));
  return out;
}

// --- random cases ----------------------------------------------------------

function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ATOMS = ['a', 'b', 'c', 'x', ' ', '\n', 'é', 'e\u0301', '漢', '字', 'か', '😀', '👍🏽', '𝒳', '\u0000'];
const EMBEDS = [{ image: 'x.png' }, { image: 'y.png' }, { video: 'v.mp4' }, { formula: 'e=mc^2' }];
const FORMATS = {
  bold: [true], italic: [true], color: ['red', 'blue'], header: [1, 2], link: ['https://t.example/'],
};

function randomTools(rng) {
  const int = (n) => Math.floor(rng() * n);
  const pick = (arr) => arr[int(arr.length)];
  const attrs = (nulls) => {
    const out = {};
    for (const key of Object.keys(FORMATS)) {
      if (rng() < 0.3) out[key] = nulls && rng() < 0.35 ? null : pick(FORMATS[key]);
    }
    return Object.keys(out).length ? out : undefined;
  };
  const text = (max) => {
    let s = '';
    const n = 1 + int(max);
    for (let i = 0; i < n; i += 1) s += rng() < 0.7 ? pick(ATOMS.slice(0, 6)) : pick(ATOMS);
    return s;
  };
  const insert = (delta, nulls) => {
    if (rng() < 0.15) delta.insert({ ...pick(EMBEDS) }, rng() < 0.4 ? attrs(nulls) : undefined);
    else delta.insert(text(5), rng() < 0.5 ? attrs(nulls) : undefined);
  };
  const doc = (runs) => {
    const delta = D();
    const n = int(runs + 1);
    for (let i = 0; i < n; i += 1) insert(delta, false);
    return delta;
  };
  // Positions of a document that do not cut a surrogate pair.
  const boundaries = (document) => {
    const units = [];
    for (const op of document.ops) {
      if (typeof op.insert === 'string') for (let i = 0; i < op.insert.length; i += 1) units.push(op.insert.charCodeAt(i));
      else units.push(0);
    }
    const ok = [];
    for (let i = 0; i <= units.length; i += 1) {
      const lowAfterHigh = i > 0 && i < units.length && units[i] >= 0xdc00 && units[i] <= 0xdfff
        && units[i - 1] >= 0xd800 && units[i - 1] <= 0xdbff;
      if (!lowAfterHigh) ok.push(i);
    }
    return ok;
  };
  // A random edit of `document`; with `anywhere` it may cut surrogate pairs.
  const edit = (document, anywhere) => {
    const length = document.length();
    const ok = anywhere ? [...Array(length + 1).keys()] : boundaries(document);
    const next = (pos) => ok.find((p) => p >= Math.min(pos + 1 + int(6), length)) ?? length;
    const delta = D();
    let pos = 0;
    while (rng() > 0.12) {
      const r = rng();
      if (r < 0.3 || pos >= length) {
        if (pos >= length && rng() < 0.5) break;
        insert(delta, false);
      } else {
        const to = next(pos);
        if (r < 0.65) delta.retain(to - pos, rng() < 0.35 ? attrs(true) : undefined);
        else delta.delete(to - pos);
        pos = to;
      }
    }
    return delta;
  };
  return { int, pick, doc, edit, boundaries };
}

function random() {
  const rng = mulberry32(SEED);
  const t = randomTools(rng);
  const cases = [];
  for (let i = 0; i < RANDOM_CASES; i += 1) {
    const doc = t.doc(i % 10 === 0 ? 16 : 6);
    const anywhere = rng() < 0.1;
    const a = t.edit(doc, anywhere);
    const b = t.edit(doc, anywhere);
    const afterA = doc.compose(a);
    const c = t.edit(afterA, anywhere);
    const length = doc.length();
    const positions = [t.int(length + 1), t.int(length + 1), t.pick(t.boundaries(doc))];
    const start = t.int(length + 1);
    const end = rng() < 0.2 ? null : start + t.int(length + 2 - start);
    // Diff against an unrelated document sometimes, else against doc + a (stored once).
    const unrelated = rng() < 0.2;
    const other = unrelated ? t.doc(6) : afterA;
    cases.push({
      doc: ops(doc), a: ops(a), b: ops(b), c: ops(c), other: unrelated ? ops(other) : null,
      doc_a: ops(afterA),
      a_c: ops(a.compose(c)),
      a_t_b: ops(a.transform(b, true)),
      a_t_b_low: ops(a.transform(b, false)),
      positions,
      a_pos: positions.map((p) => a.transformPosition(p, true)),
      a_pos_low: positions.map((p) => a.transformPosition(p, false)),
      a_inv: ops(a.invert(doc)),
      diff: ops(doc.diff(other)),
      slice: [start, end, ops(end === null ? doc.slice(start) : doc.slice(start, end))],
      a_concat_c: i % 4 === 0 ? ops(a.concat(c)) : null,
      lengths: [a.length(), a.changeLength()],
    });
  }
  const chains = [];
  for (let i = 0; i < CHAINS; i += 1) {
    let doc = t.doc(30);
    const start = ops(doc);
    const edits = [];
    for (let j = 0; j < 12; j += 1) {
      const e = t.edit(doc, false);
      edits.push(ops(e));
      doc = doc.compose(e);
    }
    chains.push({ doc: start, edits, expected: ops(doc) });
  }
  return { seed: SEED, cases, chains };
}

const meta = { generator: `quill-delta ${version}`, script: 'tests/collab/vectors/generate.mjs' };
writeFileSync(join(here, 'handwritten.json'), JSON.stringify({ ...meta, ...handwritten() }, null, 1) + '\n');
writeFileSync(join(here, 'random.json'), JSON.stringify({ ...meta, ...random() }) + '\n');
console.log(`wrote vectors from quill-delta ${version}`);
