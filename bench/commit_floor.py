"""What one durable PostgreSQL commit costs on this machine, before any of Tandem's work.

An acknowledged edit must survive a crash, so every commit waits for PostgreSQL to flush its
log to disk. This times a one-row INSERT in autocommit, with `synchronous_commit` on (the
flush, as Tandem runs) and off (no flush: what the flush itself costs), back to back and
after the idle gaps that typing leaves between commits (a keystroke every 20 ms at 10 x 5/s).

    .venv/bin/python bench/commit_floor.py [--dsn postgres://postgres@127.0.0.1:5432/postgres]

It creates and drops a table of its own (`tandem_commit_floor`).
"""

import argparse
import statistics
import time

import psycopg

GAPS_MS = (0, 5, 20)
COMMITS = 300


def timed_inserts(connection, gap_ms):
    times = []
    for _ in range(COMMITS):
        if gap_ms:
            time.sleep(gap_ms / 1000)
        started = time.perf_counter()
        connection.execute("INSERT INTO tandem_commit_floor (body) VALUES ('x')")
        times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with psycopg.connect(args.dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS tandem_commit_floor")
        connection.execute("CREATE TABLE tandem_commit_floor (id bigserial PRIMARY KEY, body text)")
        try:
            print("| synchronous_commit | " + " | ".join(f"gap {g} ms" for g in GAPS_MS) + " |")
            print("|---|" + "---:|" * len(GAPS_MS))
            for setting in ("on", "off"):
                connection.execute(f"SET synchronous_commit = {setting}")
                cells = []
                for gap in GAPS_MS:
                    p50, p99 = timed_inserts(connection, gap)
                    cells.append(f"{p50:,.0f} / {p99:,.0f} us")
                print(f"| {setting} | " + " | ".join(cells) + " |")
            print("\n(p50 / p99 of a one-row INSERT in autocommit, client-side)")
        finally:
            connection.execute("DROP TABLE tandem_commit_floor")


if __name__ == "__main__":
    main()
