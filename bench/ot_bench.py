"""Benchmark of collab.ot against quill-delta in node, on the same workloads.

    python bench/ot_bench.py [--quick]

Workload "compose": single-character inserts at random positions composed,
one after another, into a document of many formatted runs (bold, italic and
plain in turn), at 10 KB, 100 KB and 1 MB to show how cost grows with
document length.  Workload "transform": pairs of small concurrent edits,
each transformed against the other (both priorities).

The workloads are generated here and handed to bench/ot_bench.mjs as JSON,
so both languages run identical inputs.  Without node only Python runs.
Each figure is the best of three runs (node also gets a warm-up run).
"""

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collab.ot import Delta  # noqa: E402

FORMATS = [{"bold": True}, {"italic": True}, None]
REPEATS = 3


def make_document(size: int, rng: random.Random) -> list:
    """Ops of a document of ``size`` code units in runs of 8 to 40 characters."""
    ops = []
    total = 0
    while total < size:
        run = min(rng.randint(8, 40), size - total)
        text = "".join(rng.choice("abcdefghij klmnop") for _ in range(run))
        attrs = FORMATS[len(ops) % 3]
        ops.append({"insert": text, "attributes": attrs} if attrs else {"insert": text})
        total += run
    return ops


def make_compose_workload(size: int, count: int, rng: random.Random) -> dict:
    doc = make_document(size, rng)
    edits = []
    length = size
    for _ in range(count):
        at = rng.randint(0, length)
        edits.append([{"retain": at}, {"insert": "x"}] if at else [{"insert": "x"}])
        length += 1
    return {"doc": doc, "edits": edits}


def make_transform_workload(count: int, rng: random.Random) -> dict:
    def small_edit():
        ops = []
        at = rng.randint(0, 900)
        if at:
            ops.append({"retain": at})
        if rng.random() < 0.6:
            ops.append({"insert": "yz"[: rng.randint(1, 2)]})
        else:
            ops.append({"delete": rng.randint(1, 3)})
        if rng.random() < 0.3:
            ops.append({"retain": rng.randint(1, 20)})
            ops.append({"insert": "q", "attributes": {"bold": True}})
        return ops

    return {"pairs": [[small_edit(), small_edit()] for _ in range(count)]}


def run_compose(work: dict) -> tuple[float, int]:
    doc = Delta(work["doc"])
    edits = [Delta(e) for e in work["edits"]]
    start = time.perf_counter()
    for edit in edits:
        doc = doc.compose(edit)
    elapsed = time.perf_counter() - start
    return len(edits) / elapsed, doc.length()


def run_transform(work: dict) -> tuple[float, int]:
    pairs = [(Delta(a), Delta(b)) for a, b in work["pairs"]]
    check = 0
    start = time.perf_counter()
    for a, b in pairs:
        check += len(a.transform(b, True).ops) + len(b.transform(a, False).ops)
    elapsed = time.perf_counter() - start
    return len(pairs) / elapsed, check


def run_node(path: Path) -> dict | None:
    node = shutil.which("node")
    if node is None:
        return None
    script = Path(__file__).with_name("ot_bench.mjs")
    result = subprocess.run(
        [node, str(script), str(path)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    rng = random.Random(7)
    workloads = {}
    for label, size, count in (
        ("compose 10KB", 10_000, 4000),
        ("compose 100KB", 100_000, 2000),
        ("compose 1MB", 1_000_000, 150),
    ):
        workloads[label] = ("compose", make_compose_workload(size, count // scale, rng))
    workloads["transform pairs"] = ("transform", make_transform_workload(20000 // scale, rng))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "workloads.json"
        path.write_text(json.dumps({k: {"kind": v[0], **v[1]} for k, v in workloads.items()}))
        node = run_node(path)

    print(f"{'workload':<18}{'python ops/s':>14}{'node ops/s':>14}{'node/python':>13}")
    for label, (kind, work) in workloads.items():
        run = run_compose if kind == "compose" else run_transform
        # Best of three, as for node: the machine is shared, so slow runs are noise.
        rate, check = max(run(work) for _ in range(REPEATS))
        if node is None:
            print(f"{label:<18}{rate:>14,.0f}{'(no node)':>14}")
            continue
        theirs = node[label]
        if theirs["check"] != check:
            raise SystemExit(f"{label}: python and node disagree ({check} != {theirs['check']})")
        print(f"{label:<18}{rate:>14,.0f}{theirs['rate']:>14,.0f}{theirs['rate'] / rate:>12.2f}x")


if __name__ == "__main__":
    main()
