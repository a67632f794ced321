"""Summarise py-spy raw (collapsed) profiles: the functions with the most samples.

    python bench/profile_top.py PROFILE.txt... [--top 25]

py-spy leaves out idle threads, so every sample is busy time of some thread. Self: samples
whose innermost frame is the function. Total: samples with the function anywhere on the stack.
"""

import argparse
from collections import Counter


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own, total, samples = Counter(), Counter(), 0
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
                for frame in set(frames):
                    total[frame] += count
    print(f"{samples} busy samples")
    for title, counter in (("self", own), ("total", total)):
        print(f"\n{title} (share of busy samples):")
        for frame, count in counter.most_common(args.top):
            print(f"  {count / max(1, samples):6.1%}  {frame}")


if __name__ == "__main__":
    main()
