"""Each function's inclusive share of ``py-spy record -f raw`` profiles.

``bench/worker_pieces.py`` puts each sample in one piece of the request path;
this lists every function with the share of the samples it is on the stack
of (once a sample, however deep it recurs), over one or more profiles (both
HTTP workers of a run together), leaving out the samples idle in the event
loop's wait or in an idle pool thread::

    uvx py-spy record -p <worker pid> -r 200 -d 15 -f raw -o w1.raw
    python bench/pyspy_inclusive.py w1.raw w2.raw --min 0.5
"""

from __future__ import annotations

import argparse
import collections


def _name(frame: str) -> str:
    """``function (file)`` of a raw frame ``function (path:line)``."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else function


def _idle(frames: list[str]) -> bool:
    inner = frames[-3:]
    return (any("epoll" in f or "select (selectors" in f for f in inner)
            or (bool(frames) and "wait" in frames[-1] and "threading" in frames[-1]))


def inclusive(paths: list[str]) -> tuple[int, collections.Counter]:
    """(samples counted, samples each function was on the stack of)."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for path in paths:
        with open(path) as raw:
            for line in raw:
                stack, _, n = line.rstrip().rpartition(" ")
                if not stack:
                    continue
                frames = stack.split(";")
                if _idle(frames):
                    continue
                total += int(n)
                for name in {_name(f) for f in frames}:
                    counts[name] += int(n)
    return total, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+")
    parser.add_argument("--min", type=float, default=0.5, help="smallest share shown, in %% (default 0.5)")
    args = parser.parse_args()
    total, counts = inclusive(args.profiles)
    print(f"samples outside idle waits: {total}")
    for name, n in counts.most_common():
        share = 100 * n / total
        if share < args.min:
            break
        print(f"{share:5.1f} %  {name}")


if __name__ == "__main__":
    main()
