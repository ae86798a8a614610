"""Sealing one request's Statements (``StatementSealer`` over
``seal_statement``) in two checkouts, alternated in one process: each
``--side NAME=CHECKOUT``'s ``lrs/privacy/seal.py`` (since branch split2, with
its parts: bench/seal_layout.py) is loaded as a module of its own, and
short rounds of each take turns on the same Statements, so
the machine's load falls on both alike (bench/seal_worker_piece.py runs
each checkout in a process of its own, whose runs here move by more than a
change of a microsecond).

Cases: ``new names`` (every Statement names its learner as never before:
an AES-GCM-SIV encryption, its tag and row each, the worst case) and
``known`` (every form sealed before, as a running programme's learners).
Every key is cached; the collector's young threshold is the services'
(100,000).  Per case: each side's median CPU µs a statement and the median
of the rounds' ratios (second side / first) with a bootstrap 95% interval.

    python bench/seal_sealer_ab.py --side start=/work/wt/base --side seal=. --rounds 30 --label seal
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from run_record import add_result_options, load_average, machine, write_result  # noqa: E402
from seal_layout import load_seal  # noqa: E402
from seal_ratio import median_interval  # noqa: E402

_AGENT = '{"objectType":"Agent","name":"Learner %d","mbox":"mailto:learner%d@agency%d.example.gov"}'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", action="append", required=True, metavar="NAME=CHECKOUT",
                        help="two of them: the first is the ratio's denominator")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=40, help="requests of 100 Statements a round (default 40)")
    parser.add_argument("--resamples", type=int, default=4000)
    parser.add_argument("--inline-first", action="append", default=[], metavar="NAME",
                        help="that side seals a naming met for the first time inside the Statement (v2; "
                             "StatementSealer(inline_first=True): branch sealrow, reverted, so point that side "
                             "at a checkout of 3fb38de..af2a893)")
    add_result_options(parser)
    args = parser.parse_args()
    if len(args.side) != 2:
        parser.error("give two --side NAME=CHECKOUT")
    import msgspec

    from bench.ingest import _TEMPLATE

    gc.set_threshold(100_000, 50, 100)  # lrs.runtime's SERVICE_GC_THRESHOLDS young generation
    sides = {}
    for given in args.side:
        name, _, tree = given.partition("=")
        sides[name] = load_seal(name, Path(tree).resolve())
    for name in args.inline_first:
        if name not in sides:
            parser.error(f"--inline-first {name}: no --side of that name")
        if "inline_first" not in inspect.signature(sides[name].StatementSealer).parameters:
            parser.error(f"--inline-first {name}: that checkout's StatementSealer has no inline_first (inline-first "
                         "was branch sealrow's, reverted; check out 3fb38de..af2a893 for that side)")
    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example/", "name": "client-1"}}
    count = args.requests * 100
    rounds_total = args.rounds + 1  # the first round warms up and is dropped

    def statements(first: int, names: bool) -> list[list[dict]]:
        out = []
        for b in range(args.requests):
            batch = []
            for i in range(100):
                n = first + b * 100 + i
                text = _TEMPLATE % (f"00000000-0000-4000-8000-{n:012x}", n if names else n % 50_000, n % 50_000,
                                    n % 40, n % 21, n % 21, n % 100, n % 100, 1 + n % 59,
                                    "ec531277-b57b-4c15-8d91-d292c5b2b8f7", n % 60)
                batch.append(msgspec.json.decode(text))
            out.append(batch)
        return out

    # Every learner's key, one per side (each side's own DataKey), the same pseudonyms.
    secrets_ = {n: os.urandom(32) for n in range(50_000)}
    pseudonyms = {n: os.urandom(16).hex() for n in range(50_000)}
    keys = {}
    for name, module in sides.items():
        table = {f"mbox:mailto:learner{n}@agency{n % 40}.example.gov":
                 module.SealKey(pseudonyms[n], 1, module.new_data_key_cipher(secrets_[n])) for n in range(50_000)}
        table["account:https://lrs.example/|client-1"] = module.SealKey("c" * 32, 1,
                                                                         module.new_data_key_cipher(os.urandom(32)))
        keys[name] = table

    def run(module, table, data, forms, options) -> float:  # type: ignore[no-untyped-def]
        start = time.process_time()
        for batch in data:
            sealer = module.StatementSealer(tenant, forms, table.__getitem__, **options)
            sealer.agent(authority)
            [module.seal_statement(s, sealer.agent) for s in batch]
            if forms is not _NONE:
                forms.update(sealer.fresh)
        return (time.process_time() - start) / count * 1e6

    _NONE: dict = {}
    options = {name: {"inline_first": True} if name in args.inline_first else {} for name in sides}
    results: dict[str, dict] = {}
    load_before = load_average()
    for case in ("new names", "known"):
        times: dict[str, list[float]] = {name: [] for name in sides}
        known_data = statements(0, False)
        known_forms = {}
        for name, module in sides.items():  # every form sealed (twice: inline first keeps a form the second time)
            forms: dict = {}
            for _ in range(2):
                run(module, keys[name], known_data, forms, options[name])
            known_forms[name] = forms
        for round_ in range(rounds_total):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            data = statements(1_000_000 + round_ * count, True) if case == "new names" else known_data
            for name in order:
                forms = _NONE if case == "new names" else known_forms[name]
                used = run(sides[name], keys[name], data, forms, options[name])
                if round_:
                    times[name].append(used)
        first, second = list(sides)
        ratios = [b / a for a, b in zip(times[first], times[second])]
        middle, low, high = median_interval(ratios, args.resamples)
        results[case] = {
            **{f"{name} us/statement (median)": round(statistics.median(v), 3) for name, v in times.items()},
            f"{second}/{first} ratio (median)": round(middle, 4), "ratio_95": [round(low, 4), round(high, 4)],
            "rounds": len(ratios),
        }
        print(case, results[case], flush=True)
    if not args.no_write:
        write_result({"benchmark": "seal_sealer_ab", "machine": machine(load_before=load_before), "note": args.note,
                      "sides": dict(s.partition("=")[::2] for s in args.side), "rounds": args.rounds,
                      "inline_first": args.inline_first,
                      "requests_a_round": args.requests, "results": results}, "seal_sealer_ab", args.label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
