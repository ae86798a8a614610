"""Levers on an HTTP worker's and the relay's per-statement CPU, timed alone.

Each row times one piece of the ingest path and the way it was tried
instead, on the ingest bench's statements (``bench/ingest.py``'s bodies,
batch 100, laid out by the group commit as ``bench/group_insert_encoding.py``
does), alternated ``--rounds`` times; µs of CPU (``time.thread_time``) a
statement, best of ``--repeat`` in each round:

* ``to_builtins`` of the typed decode's Structs against a plain decode of
  their own encoding (``decode(encode(structs))``, which would also give
  ``check_shape`` its member count);
* the canonical (sorted) encode of a prepared body against the same encode
  unsorted (what sorting costs);
* zstd of a group's payloads one ``compress`` call each against one
  ``multi_compress_to_buffer`` call (the same frames);
* the search for ``"attachments"`` in each payload against one search of the
  group's joined bytes;
* SHA-256 of the payload alone against the event hash of its fields
  (``lrs.eventlog._hasher``), and the relay's opening of a stored payload
  (``open_payload``) against zstd's ``decompress`` alone.

    .venv/bin/python bench/ingest_levers_tried.py --rounds 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from replay_chain_cost import thread_cpu  # noqa: E402
from run_record import add_result_options, machine, write_result  # noqa: E402


def rows(groups: int) -> dict[str, Callable[[], object]]:
    import ingest
    import msgspec
    from group_insert_encoding import _plans

    from lrs import payload_codec
    from lrs.eventlog import _hasher, stored_texts_of
    from lrs.ingest.prepare import prepare_statements
    from lrs.store.ids import RandomUuids, parse_uuid
    from lrs.xapi import statement

    bodies = [ingest._body(100, [i * 100]) for i in range(groups)]
    structs = [statement._batch_decoder.decode(b) for b in bodies]
    authority = {"objectType": "Agent", "name": "bench", "account": {"homePage": "http://lrs.example", "name": "bench"}}
    new_id = RandomUuids()
    prepared = [[p.body for p in prepare_statements(msgspec.to_builtins(s), version="1.0.3", authority=authority,
                                                    new_id=new_id, parse_id=parse_uuid)] for s in structs]
    records = [new.event for plan in _plans(groups, 100) for new in plan.new]
    texts = stored_texts_of(records)
    payloads = [r.payload for r in records]
    payload_groups = [payloads[i:i + 100] for i in range(0, len(payloads), 100)]
    compressor = payload_codec._compressor(payload_codec.CURRENT_DICTIONARY)
    frames = [compressor.compress(p) for p in payloads]
    multi = [f.tobytes() for g in payload_groups for f in compressor.multi_compress_to_buffer(g, threads=0)]
    assert multi == frames, "multi_compress_to_buffer wrote other frames"
    decompress = payload_codec._decompressor(payload_codec.CURRENT_DICTIONARY).decompress
    encode, decode = msgspec.json.Encoder().encode, msgspec.json.Decoder().decode
    sorted_encode = msgspec.json.Encoder(order="sorted").encode
    assert all(msgspec.to_builtins(s) == decode(encode(s)) for s in structs)
    hasher = _hasher("default", "statement")
    args = [(r.prev_hash, r.position, r.event_id.bytes, t, r.payload) for r, t in zip(records, texts)]
    key = payload_codec.ATTACHMENTS_KEY
    return {
        "to_builtins": lambda: [msgspec.to_builtins(s) for s in structs],
        "decode(encode(structs))": lambda: [decode(encode(s)) for s in structs],
        "canonical encode (sorted)": lambda: [sorted_encode(b) for p in prepared for b in p],
        "the same encode unsorted": lambda: [encode(b) for p in prepared for b in p],
        "zstd compress, one call each": lambda: [compressor.compress(p) for p in payloads],
        "zstd multi_compress_to_buffer, one call a group": lambda: [
            [f.tobytes() for f in compressor.multi_compress_to_buffer(g, threads=0)] for g in payload_groups],
        "attachments search, each payload": lambda: [any(key in p for p in g) for g in payload_groups],
        "attachments search, joined group": lambda: [key in b"".join(g) for g in payload_groups],
        "sha256 of the payload alone": lambda: [hashlib.sha256(p).digest() for p in payloads],
        "event hash (_hasher)": lambda: [hasher(*a) for a in args],
        "open_payload": lambda: [payload_codec.open_payload(f) for f in frames],
        "zstd decompress alone": lambda: [decompress(f, 0, False, False) for f in frames],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--groups", type=int, default=20, help="groups of 100 statements")
    add_result_options(parser, output=True)
    args = parser.parse_args(argv)
    pieces = rows(args.groups)
    count = args.groups * 100
    load_before = [round(x, 2) for x in os.getloadavg()]
    timings: dict[str, list[float]] = {name: [] for name in pieces}
    for i in range(args.rounds):
        for name in (pieces if i % 2 == 0 else reversed(list(pieces))):
            timings[name].append(round(thread_cpu(pieces[name], count, args.repeat), 3))
    summary = {name: {"median": round(statistics.median(v), 3), "min": min(v), "max": max(v)} for name, v in timings.items()}
    for name, figures in summary.items():
        print(f"{name:50s} {figures}")
    if not args.no_write:
        write_result({
            "benchmark": "ingest-levers-tried", "command": " ".join(sys.argv), "machine": machine(), "note": args.note,
            "unit": "µs of CPU per statement", "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "rounds": timings, "summary": summary,
        }, "ingest-levers-tried", args.label, output=args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
