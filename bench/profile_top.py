"""Summarise py-spy raw (collapsed) profiles: the functions with the most samples.

    python bench/profile_top.py PROFILE.txt... [--top 25]

py-spy leaves out idle threads, so every sample is busy time of some thread. Self: samples
whose innermost frame is the function. Total: samples with the function anywhere on the stack.
"""

import argparse
from collections import Counter

# Where a sample's time goes, by the first matching frame (innermost first).
AREAS = [
    ("waiting in epoll", ("EpollSelector.select",)),
    ("database connect/close", ("get_new_connection", "BaseDatabaseWrapper._close",
                                "close_old_connections")),
    ("database commit", ("BaseDatabaseWrapper._commit",)),
    ("database queries (ORM + driver)", ("django/db/", "psycopg", "collab/store.py")),
    ("OT (collab/ot)", ("collab/ot/",)),
    ("JSON encode/decode", ("json/",)),
    ("thread hand-off (asgiref/executor)", ("concurrent/futures", "asgiref/", "_write_to_self",
                                            "_read_from_self", "threading.py")),
    ("redis / channel layer", ("channels_redis", "redis/")),
    ("WebSocket I/O (daphne/autobahn/twisted)", ("autobahn/", "daphne/", "twisted/", "txaio")),
    ("engine (collab hub/commit/consumers)", ("collab/",)),
    ("asyncio loop", ("asyncio/",)),
]  # fmt: skip


def area(frames):
    for frame in reversed(frames):
        for name, needles in AREAS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own, total, areas, samples = Counter(), Counter(), Counter(), 0
    for name in args.files:
        with open(name) as handle:
            for line in handle:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack:
                    continue
                count = int(count)
                frames = stack.split(";")
                samples += count
                own[frames[-1]] += count
                areas[area(frames)] += count
                for frame in set(frames):
                    total[frame] += count
    print(f"{samples} busy samples")
    for title, counter in (("area", areas), ("self", own), ("total", total)):
        print(f"\n{title} (share of busy samples):")
        for frame, count in counter.most_common(args.top):
            print(f"  {count / max(1, samples):6.1%}  {frame}")


if __name__ == "__main__":
    main()
