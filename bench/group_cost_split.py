"""A writer's CPU split into what a group costs and what a statement costs,
function by function, from two cProfiles of ``bench/writer_plans.py``'s timed
appends: one at groups of 1 (``--callers 1``), one at larger groups
(``--callers 16``), the same number of statements.

Each function's own time a statement is read as ``per statement + per group
/ group size`` and the two unknowns solved from the two runs; the calls a
group (a coroutine's every resumption counts as a call) come out the same
way.  cProfile's clock is the wall clock and it adds a few µs to every call,
so the figures are larger than the process's CPU (``writer_plans.py``
prints that): read them for where the per-group part is, not for its size.
``send`` and ``poll`` are waits as much as work (the process ``send`` wakes
often takes the core there on a loaded machine)::

    python bench/writer_plans.py --url ... --announce --prefill 6000 --statements 6000 --callers 1 --profile g1.prof
    python bench/writer_plans.py --url ... --announce --prefill 6000 --statements 6000 --callers 16 --profile g16.prof
    python bench/group_cost_split.py g1.prof GROUPS1 g16.prof GROUPS16 --statements 6000
"""

from __future__ import annotations

import argparse
import pstats


def split(small: str, small_groups: int, large: str, large_groups: int, statements: int) -> list[tuple]:
    """:func:`split_stats` of two cProfile files."""
    return split_stats(pstats.Stats(small).stats, small_groups,  # type: ignore[attr-defined]
                       pstats.Stats(large).stats, large_groups, statements)  # type: ignore[attr-defined]


def split_stats(a: dict, small_groups: int, b: dict, large_groups: int, statements: int) -> list[tuple]:
    """(µs a group, µs a statement, calls a group, function) for every function
    of two pstats tables, largest per-group first."""
    ga, gb = small_groups / statements, large_groups / statements  # groups a statement
    rows = []
    for key in set(a) | set(b):
        _, calls_a, own_a, *_ = a.get(key, (0, 0, 0.0, 0.0, {}))
        _, calls_b, own_b, *_ = b.get(key, (0, 0, 0.0, 0.0, {}))
        per_group = (own_a - own_b) / statements / (ga - gb)
        calls = (calls_a - calls_b) / statements / (ga - gb)
        rows.append((per_group * 1e6, (own_a / statements - per_group * ga) * 1e6, calls,
                     f"{key[2]} ({key[0].rsplit('/', 1)[-1]}:{key[1]})"))
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("small", help="cProfile at small groups (--callers 1)")
    parser.add_argument("small_groups", type=int, help="its groups (writer_plans.py's 'groups')")
    parser.add_argument("large", help="cProfile at large groups")
    parser.add_argument("large_groups", type=int)
    parser.add_argument("--statements", type=int, required=True, help="statements in each run")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    rows = split(args.small, args.small_groups, args.large, args.large_groups, args.statements)
    print(f"{'µs a group':>10} {'µs a stmt':>10} {'calls a group':>13}  function")
    for per_group, per_statement, calls, name in rows[: args.top]:
        print(f"{per_group:10.1f} {per_statement:10.1f} {calls:13.2f}  {name}")
    print(f"{sum(r[0] for r in rows):10.1f} {sum(r[1] for r in rows):10.1f} {'':13}  in all")


if __name__ == "__main__":
    main()
