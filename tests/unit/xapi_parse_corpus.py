"""A fixed corpus of request bodies and what ``parse_statements`` /
``parse_statement`` answered for each, to hold the validator to its
recorded behaviour while its code is made faster.

The corpus is built here, deterministically, from the valid statements of
tests/unit/test_xapi_valid.py (``CORPUS``), the rule-by-rule cases of
tests/unit/test_xapi_invalid.py and the ingest bench's statement, each
broken in many ways at every key: deleted, null, other JSON types,
strings that are and are not IRIs, UUIDs, timestamps, durations, language
tags and mailto IRIs, keys renamed in another case, unknown keys added, a
key written twice in the text, whitespace around colons, ``\\u`` escapes,
and extensions nested too deeply; each in a batch (as its second statement)
and alone, under 1.0.3 and 2.0.0.

The outcome of each body (the Statements returned, in their key order, or
the status, path and message of the 400) is kept as a 6-hex-digit digest
in tests/unit/xapi_parse_outcomes.json, recorded from the validator before
it was changed.  To record them again from a given checkout (only when a
rule's behaviour is meant to change, and say so in the commit)::

    python tests/unit/xapi_parse_corpus.py --lrs /path/to/checkout --write
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTCOMES = HERE / "xapi_parse_outcomes.json"
DIGEST = 6  # hex digits kept of each outcome's SHA-256


def _load(name: str) -> Any:
    """A sibling test module, loaded from its file (so that the ``lrs`` of
    another checkout can be measured against this corpus)."""
    spec = importlib.util.spec_from_file_location(f"_xapi_corpus_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BENCH = {
    "id": "0b6a3c0e-6f38-4c59-9c2e-1b8f1d6c2a11",
    "actor": {"objectType": "Agent", "name": "Learner 7", "mbox": "mailto:learner7@agency7.example.gov"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en-US": "passed"}},
    "object": {
        "objectType": "Activity",
        "id": "https://mooc.example.gov/courses/digcomp/unit-7",
        "definition": {
            "name": {"en-US": "Digital literacy unit 7"},
            "type": "http://adlnet.gov/expapi/activities/lesson",
        },
    },
    "result": {
        "score": {"scaled": 0.07, "raw": 7, "min": 0, "max": 100},
        "success": True,
        "completion": True,
        "duration": "PT8M",
    },
    "context": {
        "registration": "5b1e0a52-8c0e-4f55-9a33-2a1b0c9d8e7f",
        "platform": "bench",
        "language": "vi-VN",
        "contextActivities": {"parent": [{"id": "https://mooc.example.gov/courses/digcomp"}]},
        "extensions": {"http://example.com/ext/level": {"a": [1, {"b": None}]}},
    },
    "timestamp": "2026-11-01T08:07:00Z",
}

# Values put in place of each key's value.
VALUES: list[Any] = [
    None, 5, 1.5, True, "", "not an iri", "http://example.com/iri", "mailto:a@example.com",
    "0B6A3C0E-6F38-4C59-9C2E-1B8F1D6C2A11", "2024-02-30T00:00:00Z", "PT1H", "en-US", "Group", "SubStatement",
    "StatementRef", "2.0.0", {}, [], {"en-US": "x"}, {"id": "http://example.com/a"},
    "http://adlnet.gov/expapi/verbs/voided",
]


# The statements broken at every key (the others are minimal's, or another
# interaction's, but for one value, and are kept whole and with duplicates).
MUTATED = {
    "minimal", "full", "substatement", "substatement-of-ref", "voiding", "anonymous-group-actor",
    "agent-object", "group-object", "oauth-authority", "interaction-choice", "interaction-matching",
    "interaction-performance", "bench",
}


def _spots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) of a decoded JSON value, outermost first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _spots(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _spots(value)


def _mutations(statement: dict) -> Iterator[tuple[str, dict]]:
    count = sum(1 for _ in _spots(statement))
    for n in range(count):
        for kind in ("delete", "rename", "unknown", *range(len(VALUES))):
            result = copy.deepcopy(statement)
            owner, key = list(_spots(result))[n]
            if isinstance(owner, list):
                if kind == "delete":
                    del owner[key]
                elif isinstance(kind, int):
                    owner[key] = copy.deepcopy(VALUES[kind])
                else:
                    continue
            elif kind == "delete":
                del owner[key]
            elif kind == "rename":
                flipped = key.swapcase() if key.swapcase() != key else key + "X"
                owner[flipped] = owner.pop(key)
            elif kind == "unknown":
                owner["unknownProperty"] = "x"
            else:
                owner[key] = copy.deepcopy(VALUES[kind])
            yield f"{n}:{kind}", result


def _with_duplicate(text: str, key: str) -> str | None:
    """``text`` with the first member named ``key`` written twice (same value)."""
    marker = json.dumps(key) + ": "
    at = text.find(marker)
    if at < 0:
        return None
    depth, end, in_string, escape = 0, at + len(marker), False, False
    while end < len(text):
        c = text[end]
        if in_string:
            escape = not escape and c == "\\"
            in_string = escape or c != '"'
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            break
        end += 1
    member = text[at:end]
    return text[:at] + member + ", " + text[at:]


def _deep(levels: int) -> Any:
    value: Any = 1
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


def texts(only: str | None = None) -> Iterator[tuple[str, str]]:
    """(case id, one Statement's JSON text) of the whole corpus, in a fixed
    order; ``only``: the cases of that one valid statement."""
    valid = _load("test_xapi_valid")
    invalid = _load("test_xapi_invalid")
    bases = {**{name: valid.CORPUS[name] for name in sorted(valid.CORPUS)}, "bench": BENCH}
    if only is not None:
        bases = {only: bases[only]}
    for name, statement in bases.items():
        yield f"{name}", json.dumps(statement)
        if name in MUTATED:
            for case, mutated in _mutations(statement):
                yield f"{name}/{case}", json.dumps(mutated)
        text = json.dumps(statement)
        for key in sorted({k for owner, k in _spots(statement) if isinstance(k, str)}):
            duplicated = _with_duplicate(text, key)
            if duplicated is not None:
                yield f"{name}/duplicate:{key}", duplicated
        yield f"{name}/spaced", json.dumps(statement, indent=2, separators=(" , ", " : "))
        yield f"{name}/escaped", json.dumps(statement, ensure_ascii=True).replace('"id"', '"\\u0069d"', 1)
        yield f"{name}/escaped-value", text.replace("http", "\\u0068ttp", 1)
    if only is not None:
        return
    for group in (invalid.CASES, invalid.V2_CASES):
        for case in group:
            yield f"invalid/{case[0]}", json.dumps(case[1])
    minimal = valid.CORPUS["minimal"]
    for where in ("result", "context", "definition"):
        for levels in (55, 61, 62, 63, 64, 70):
            statement = copy.deepcopy(minimal)
            extensions = {"http://example.com/ext": _deep(levels)}
            if where == "definition":
                statement["object"]["definition"] = {"extensions": extensions}
            else:
                statement[where] = {"extensions": extensions}
            yield f"deep/{where}/{levels}", json.dumps(statement)
    yield "deep/no-extensions-key-in-string", json.dumps({**minimal, "result": {"response": "extensions" + "[" * 80}})


def outcome(call: Callable[[], Any]) -> str:
    try:
        value = call()
    except Exception as err:  # noqa: BLE001 - the outcome names whatever was raised
        status = getattr(err, "status", type(err).__name__)
        return f"{status}|{getattr(err, 'path', None)}|{getattr(err, 'message', str(err))}"
    return "ok|" + json.dumps(value)


def outcomes(
    parse_statements: Callable, parse_statement: Callable, only: str | None = None
) -> Iterator[tuple[str, str]]:
    """(case id, outcome) for every text: alone in a POST under 1.0.3 and in a
    PUT under 2.0.0, and as the second Statement of a batch under 2.0.0 (and
    under 1.0.3 for the texts that are not mutations)."""
    first = '{"actor": {"mbox": "mailto:xapi@adlnet.gov"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/created"}, ' \
        '"object": {"id": "http://example.adlnet.gov/xapi/example/activity"}}'
    for case, text in texts(only):
        body = text.encode()
        batch = ("[" + first + ", " + text + "]").encode()
        yield f"{case}|post|1.0.3", outcome(lambda: parse_statements(body, "1.0.3"))
        yield f"{case}|put|2.0.0", outcome(lambda: parse_statement(body, "2.0.0"))
        yield f"{case}|batch|2.0.0", outcome(lambda: parse_statements(batch, "2.0.0"))
        if case.count(":") == 0:
            yield f"{case}|batch|1.0.3", outcome(lambda: parse_statements(batch, "1.0.3"))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record the corpus's outcomes from a checkout's validator.")
    parser.add_argument("--lrs", required=True, help="checkout whose lrs package answers")
    parser.add_argument("--write", action="store_true", help=f"write {OUTCOMES.name}")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(args.lrs).resolve()))
    import lrs.xapi.statement as statement_module

    assert statement_module.__file__.startswith(str(Path(args.lrs).resolve())), statement_module.__file__
    results = list(outcomes(statement_module.parse_statements, statement_module.parse_statement))
    accepted = sum(1 for _, o in results if o.startswith("ok|"))
    record = {
        "recorded_from": subprocess.run(
            ["git", "-C", args.lrs, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        "cases": len(results),
        "accepted": accepted,
        "digests": "".join(digest(o) for _, o in results),
    }
    print(f"{len(results)} outcomes, {accepted} accepted")
    if args.write:
        OUTCOMES.write_text(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
