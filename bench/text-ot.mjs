// Transform of plain-text deltas (retain, insert, delete; no attributes) for the load
// generator: the same results as quill-delta's `a.transform(b, priority)`, on op arrays.
// quill-delta deep-clones every op it pushes; with 100 clients each transforming every
// incoming op against its own pending edits, that cloning was most of the generator's time.

const length = (op) =>
  op.delete ?? op.retain ?? (typeof op.insert === 'string' ? op.insert.length : 1);

class Ops {
  constructor(ops) {
    this.ops = ops;
    this.index = 0;
    this.offset = 0;
  }

  peekLength() {
    const op = this.ops[this.index];
    return op ? length(op) - this.offset : Infinity;
  }

  peekType() {
    const op = this.ops[this.index];
    if (!op || op.retain !== undefined) return 'retain';
    return op.delete !== undefined ? 'delete' : 'insert';
  }

  next(count = Infinity) {
    const op = this.ops[this.index];
    if (!op) return { retain: Infinity };
    const offset = this.offset;
    const rest = length(op) - offset;
    const taken = Math.min(count, rest);
    if (taken === rest) {
      this.index += 1;
      this.offset = 0;
    } else {
      this.offset += taken;
    }
    if (op.delete !== undefined) return { delete: taken };
    if (op.retain !== undefined) return { retain: taken };
    if (typeof op.insert === 'string') return { insert: op.insert.substr(offset, taken) };
    return { insert: op.insert };
  }
}

// quill-delta's push: neighbours of one kind merge, an insert goes before a delete.
function push(out, op) {
  let at = out.length;
  let last = out[at - 1];
  if (last && op.delete !== undefined && last.delete !== undefined) {
    out[at - 1] = { delete: last.delete + op.delete };
    return;
  }
  if (last && last.delete !== undefined && op.insert !== undefined) {
    at -= 1;
    last = out[at - 1];
  }
  if (last && op.retain !== undefined && last.retain !== undefined) {
    out[at - 1] = { retain: last.retain + op.retain };
  } else if (last && typeof op.insert === 'string' && typeof last.insert === 'string') {
    out[at - 1] = { insert: last.insert + op.insert };
  } else {
    out.splice(at, 0, op);
  }
}

/** `b` transformed against `a` (both plain-text op arrays), as quill-delta would. */
export function transform(a, b, priority) {
  const mine = new Ops(a);
  const theirs = new Ops(b);
  const out = [];
  while (mine.peekLength() < Infinity || theirs.peekLength() < Infinity) {
    if (mine.peekType() === 'insert' && (priority || theirs.peekType() !== 'insert')) {
      push(out, { retain: length(mine.next()) });
    } else if (theirs.peekType() === 'insert') {
      push(out, theirs.next());
    } else {
      const count = Math.min(mine.peekLength(), theirs.peekLength());
      const ours = mine.next(count);
      const other = theirs.next(count);
      if (ours.delete !== undefined) continue; // deleted here already
      push(out, other.delete !== undefined ? other : { retain: count });
    }
  }
  const last = out[out.length - 1];
  if (last && last.retain !== undefined) out.pop();
  return out;
}

export const plain = (ops) => ops.every((op) => op.attributes === undefined);
