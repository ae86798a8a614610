"""Does where a sealing worker's per-learner caches lie in the heap slow the
rest of its work?  One process per run, no servers.

Each run times the same request work (``parse_statements``,
``prepare_statements`` and the stored JSON of batches of 100 of
bench/ingest.py's Statements, ``--learners`` learners named at random; the
caches never looked at) after one of three set-ups:

``none``         no cache (a clear worker);
``compact``      the caches of ``--learners`` learners (sealed forms by the
                 Agent's sorted JSON as ``KnownForm``, live keys as
                 ``SealKey`` with their ``DataKey``, pseudonyms by
                 identifier: a sealing worker's objects, as
                 bench/footprint_ballast builds them) made at once, in one
                 loop, before any request;
``interleaved``  the same caches grown one learner a Statement while the
                 same request work runs, as a sealing worker's grow during
                 its first requests: the long-lived objects are made among
                 each request's short-lived ones;
``relaid``       interleaved, then every cache copied anew at once (new
                 objects for each key and value) and the old ones dropped:
                 whether laying the caches out again, once grown, undoes
                 the interleaving (a candidate lever, not in the service).

The set-ups alternate (``--rounds`` times each, in rotated order), each in a
fresh process; CPU µs a Statement (``time.process_time``) of the timed
request work, the median of ``--passes`` passes a run; per set-up the
median of the runs and, for each pair of set-ups, the median of the rounds'
differences with a bootstrap 95% interval.  The heap is settled as
``lrs serve``'s (``gc.freeze``, the service's collector thresholds).

    .venv/bin/python bench/seal_heap_layout.py --rounds 6 --label seal4
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402
from seal_ratio import median_interval  # noqa: E402

LAYOUTS = ("none", "compact", "interleaved", "relaid")


def _one_run(layout: str, learners: int, passes: int, requests: int) -> float:
    sys.path.insert(0, str(HERE.parent))
    import msgspec

    from ingest import _statement
    from lrs.commands.common import SERVICE_GC_THRESHOLDS
    from lrs.ingest.prepare import prepare_statements
    from lrs.privacy.data_key import SealKey, new_data_key_cipher
    from lrs.privacy.statement_sealer import KnownForm
    from lrs.xapi.statement import parse_statements

    sorted_json = msgspec.json.Encoder(order="sorted").encode
    stored_json = msgspec.json.Encoder().encode
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "key"}}

    def body(numbers: list[int]) -> bytes:
        return ("[" + ",".join(_statement(n, str(uuid.uuid4()), str(uuid.uuid4())) for n in numbers) + "]").encode()

    timed = [body([random.randrange(learners) for _ in range(100)]) for _ in range(requests)]
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVICE_GC_THRESHOLDS)
    forms: dict[bytes, KnownForm] = {}
    current: dict[str, SealKey] = {}
    pseudonyms: dict[str, str] = {}
    in_flight: list[object] = []

    def keep(agent: dict) -> None:
        key = sorted_json(agent)
        if key in forms:
            return
        pseudonym = secrets.token_hex(16)
        forms[key] = KnownForm("Agent", pseudonym, 1, "v4.1." + secrets.token_urlsafe(9))
        current["default\x00" + pseudonym] = SealKey(pseudonym, 1, new_data_key_cipher(secrets.token_bytes(32)))
        pseudonyms["default\x00mbox:" + agent["mbox"]] = pseudonym

    def request(data: bytes, grow: bool = False) -> None:
        statements = parse_statements(data, "1.0.3")
        if grow:
            for statement in statements:
                keep(statement["actor"])
        prepared = prepare_statements(statements, version="1.0.3", authority=authority, new_id=uuid.uuid4)
        in_flight.append((statements, prepared, [stored_json(p.body) for p in prepared]))
        if len(in_flight) > 8:  # a worker's requests waiting for their group commit
            del in_flight[0]

    if layout == "compact":
        for n in range(learners):
            keep({"objectType": "Agent", "name": f"Learner {n}",
                  "mbox": f"mailto:learner{n}@agency{n % 40}.example.gov"})
    elif layout in ("interleaved", "relaid"):
        order = list(range(learners))
        random.shuffle(order)
        for start in range(0, learners, 100):
            request(body(order[start:start + 100]), grow=True)
    if layout == "relaid":
        def anew(text):  # a new object with the same value
            return text[:1] + text[1:]

        forms = {bytes(bytearray(k)): KnownForm(v.object_type, anew(v.pseudonym), v.generation, anew(v.text))
                 for k, v in forms.items()}
        current = {anew(k): SealKey(anew(v.pseudonym), v.generation, new_data_key_cipher(secrets.token_bytes(32)))
                   for k, v in current.items()}
        pseudonyms = {anew(k): anew(v) for k, v in pseudonyms.items()}
    for data in timed[:20]:
        request(data)
    figures = []
    for _ in range(passes):
        began = time.process_time()
        for data in timed:
            request(data)
        figures.append((time.process_time() - began) / (len(timed) * 100) * 1e6)
    return statistics.median(figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--learners", type=int, default=50_000)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="timed requests of 100 Statements a pass")
    parser.add_argument("--resamples", type=int, default=4000)
    parser.add_argument("--one", choices=LAYOUTS, help=argparse.SUPPRESS)
    add_result_options(parser)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one_run(args.one, args.learners, args.passes, args.requests)))
        return 0
    load_before = load_average()
    runs: list[dict] = []
    for round_ in range(args.rounds):
        order = LAYOUTS[round_ % len(LAYOUTS):] + LAYOUTS[:round_ % len(LAYOUTS)]
        row: dict = {"round": round_ + 1, "load": load_average()[0]}
        for layout in order:
            out = subprocess.run([sys.executable, __file__, "--one", layout, "--learners", str(args.learners),
                                  "--passes", str(args.passes), "--requests", str(args.requests)],
                                 capture_output=True, text=True, check=True)
            row[layout] = round(json.loads(out.stdout.strip().splitlines()[-1]), 2)
        runs.append(row)
        print(f"round {row['round']:>2}  " + "  ".join(f"{k} {row[k]:6.2f}" for k in LAYOUTS)
              + f"  µs a Statement  load {row['load']}", flush=True)
    summary: dict = {"medians": {k: round(statistics.median(r[k] for r in runs), 2) for k in LAYOUTS},
                     "differences": {}}
    for a, b in (("interleaved", "none"), ("compact", "none"), ("interleaved", "compact"), ("relaid", "compact"),
                 ("interleaved", "relaid")):
        values = [r[a] - r[b] for r in runs]
        middle, low, high = median_interval(values, args.resamples)
        summary["differences"][f"{a} - {b}"] = {"median": round(middle, 2), "95": [round(low, 2), round(high, 2)]}
        print(f"{a} - {b}: {middle:+.2f} µs a Statement [{low:+.2f}, {high:+.2f}]")
    if not args.no_write:
        write_result({"bench": "seal_heap_layout", "machine": machine(load_before=load_before), "note": args.note,
                      "settings": {k: getattr(args, k) for k in ("rounds", "learners", "passes", "requests")},
                      "runs": runs, "summary": summary}, "seal_heap_layout", args.label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
