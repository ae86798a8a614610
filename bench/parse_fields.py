"""CPU per statement of the typed decode and of ``parse_statements``, on the
ingest bench's statements at batch 100, for one checkout (``--repo``), with
what a pattern-checked field costs in msgspec against the same compiled
pattern called from a hook:

* ``typed decode``: msgspec's decode of a request body into the xAPI
  Structs (``lrs.xapi.statement._batch_decoder``), hooks and patterns
  included;
* ``plain decode``: msgspec's decode of the same bodies to dicts and lists,
  the floor of any decode;
* ``parse``: ``parse_statements`` (the typed decode, the version rules,
  ``to_builtins``, ``check_shape``);
* ``field <kind>``: for the values of one field of those statements (a
  UUID, a mailto IRI), a one-field Struct decoded with the field typed as
  the pattern-annotated ``str`` minus the same Struct with a plain ``str``
  (msgspec's pattern check a value), and the compiled pattern's ``match``
  a value (what a hook pays);
* ``hook <Struct>``: each ``__post_init__`` a bench statement runs, called
  on its decoded Structs (a call from Python, a little dearer than
  msgspec's call of it).

Best of ``--rounds`` of ``time.process_time``; run it for each checkout in
turn, alternating::

    python bench/parse_fields.py --repo /path/to/base --output a.jsonl
    python bench/parse_fields.py --output a.jsonl
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Annotated

HERE = Path(__file__).resolve().parent


def run(rounds: int, requests: int, decode_only: bool = False) -> dict[str, float]:
    import ingest  # bench/ingest.py: the statements the ingest bench posts
    import msgspec
    from key_literal_shape import _best  # best of rounds of process_time, µs a unit
    from lrs.xapi import common
    from lrs.xapi.statement import _batch_decoder, parse_statements

    bodies = [ingest._body(100, [i * 100]) for i in range(requests)]
    per = 100 * requests
    typed, plain = _batch_decoder.decode, msgspec.json.decode
    out = {
        "typed decode": _best(lambda: [typed(b) for b in bodies], rounds, per),
        "plain decode": _best(lambda: [plain(b) for b in bodies], rounds, per),
        "parse": _best(lambda: [parse_statements(b, "1.0.3") for b in bodies], rounds, per),
    }
    if decode_only:
        return out
    statements = [s for b in bodies for s in plain(b)]
    for kind, pattern, values in (
        ("uuid", common.UUID_PATTERN, [s["id"] for s in statements]),
        ("mailto", common.MAILTO_PATTERN, [s["actor"]["mbox"] for s in statements]),
    ):
        Plain = msgspec.defstruct("Plain", [("x", str)])
        Checked = msgspec.defstruct("Checked", [("x", Annotated[str, msgspec.Meta(pattern=pattern)])])
        text = msgspec.json.encode([{"x": v} for v in values])
        plain_field = msgspec.json.Decoder(list[Plain]).decode
        checked_field = msgspec.json.Decoder(list[Checked]).decode
        match = re.compile(pattern).match
        out[f"field {kind}: msgspec pattern"] = round(
            _best(lambda: checked_field(text), rounds, len(values))
            - _best(lambda: plain_field(text), rounds, len(values)), 3)
        out[f"field {kind}: match"] = _best(lambda: [match(v) for v in values], rounds, len(values))
    hooked = [(name, value) for s in (typed(b) for b in bodies) for name, value in _hooked(s)]
    names = sorted({name for name, _ in hooked})
    for name in names:
        values = [value for n, value in hooked if n == name]
        out[f"hook {name}"] = _best(lambda: [v.__post_init__() for v in values], rounds, len(values))
    return out


def _hooked(statements):
    """(type name, Struct) of every Struct with a ``__post_init__`` in ``statements``."""
    import msgspec

    stack = list(statements)
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, msgspec.Struct):
            if hasattr(type(value), "__post_init__"):
                yield type(value).__name__, value
            stack.extend(getattr(value, f) for f in value.__struct_fields__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is measured")
    parser.add_argument("--rounds", type=int, default=15, help="timings per piece; the best is kept (default 15)")
    parser.add_argument("--requests", type=int, default=40, help="request bodies of 100 statements (default 40)")
    parser.add_argument("--decode-only", action="store_true", help="the typed decode, plain decode and parse only")
    parser.add_argument("--output", help="append the record as one JSON line to this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from checkout import emit_record, piece_record

    record = {**piece_record("parse-fields", args.repo), **run(args.rounds, args.requests, args.decode_only),
              "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    emit_record(record, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
