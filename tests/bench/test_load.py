"""The load benchmark's one command still runs: one short step of one scenario, end to end.

The figures are not checked (timing belongs in the benchmark), only that the generator, the
servers and the convergence check still work together and the table comes out.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")),
    reason="the benchmark makes its own databases; it runs once, in the SQLite pass",
)
def test_one_typing_step_holds_and_converges():
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    command = [sys.executable, "bench/load.py", "--scenario", "10x1", "--config", "embedded",
               "--quick", "--max-steps", "1", "--seconds", "1", "--start", "50"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| 10")]
    assert len(rows) == 1, done.stdout
    scenario, config, rate, *_, converged, notes = (cell.strip() for cell in rows[0])
    assert (scenario, config, rate, converged) == ("10 editors, 1 doc", "embedded", "50", "yes")
    assert "Machine (bench/calibrate.py)" in done.stdout
