"""bench/seal_footprint.py's ballast side: a clear HTTP worker that holds
the per-learner caches a sealing worker holds (bench/footprint_ballast).
The experiment says nothing unless the ballast is really built in the
process that prepares Statements, is as large as asked and is touched for
each Statement prepared; and nothing is changed without the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BALLAST = ROOT / "bench" / "footprint_ballast"

# A prepare() of the wrapped module whose bodies need not be Statements (the probes' own).
_PREPARE = """
kw = dict(version="1.0.3", authority={}, new_id=None, max_statements=10, parse_id=None)
def prepare(bodies):
    try:
        s.prepare_statements(bodies, **kw)
    except Exception:
        pass  # the bodies are not Statements: only the ballast's part matters here
"""

_PROBE = """
import json, tracemalloc
import lrs.http.statements as s
""" + _PREPARE + """
wrapped = s.prepare_statements.__module__ != "lrs.ingest.prepare"
built = looked_up = None
tracemalloc.start()
if wrapped:
    prepare([])
    held = next(c.cell_contents for c in s.prepare_statements.__closure__ if isinstance(c.cell_contents, list))
    forms, current, pseudonyms, own = held[0]
    built = [len(forms), len(current), len(pseudonyms), len(own)]
    class Counting(dict):
        calls = 0
        def get(self, key, default=None):
            Counting.calls += 1
            return dict.get(self, key, default)
    held[0] = (Counting(forms), current, pseudonyms, own)
    prepare([{}, {}, {}])
    looked_up = Counting.calls
print(json.dumps({"wrapped": wrapped, "built": built, "looked_up": looked_up,
                  "bytes": tracemalloc.get_traced_memory()[0]}))
"""


def _probe(**env: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(BALLAST), str(ROOT)]), **env},
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_ballast_is_built_at_the_first_statements_prepared_and_sized_as_asked() -> None:
    found = _probe(LRS_BENCH_BALLAST="3000")
    assert found["wrapped"]
    assert found["built"] == [3000, 3000, 3000, 3000]
    assert found["looked_up"] == 3  # one learner's form a Statement prepared
    assert found["bytes"] > 3000 * 200  # each learner's form, key and pseudonym held


def test_without_the_variable_nothing_is_changed() -> None:
    found = _probe(LRS_BENCH_BALLAST="0")
    assert not found["wrapped"] and found["built"] is None


_SEALWORK_PROBE = """
import json, uuid
import lrs.http.statements as s
from lrs.ingest.prepare import prepare_statements as real
statements = [{"id": str(uuid.uuid4()), "actor": {"objectType": "Agent", "mbox": f"mailto:l{n}@example.org",
               "name": f"Learner {n}"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
               "object": {"id": "http://example.org/a"}} for n in range(5)]
kw = dict(version="1.0.3", authority={"objectType": "Agent", "account": {"homePage": "https://x/", "name": "c"}},
          new_id=uuid.uuid4)
mine = s.prepare_statements(statements, **kw)
held = next(c.cell_contents for c in s.prepare_statements.__closure__ if isinstance(c.cell_contents, list))
forms = held[0]._sealed.get("default", {})
print(json.dumps({"same": [p.body for p in mine] == [p.body for p in real(statements, **kw)],
                  "forms": len(forms), "texts": sorted({f.text[:3] for f in forms.values()})}))
"""


def test_the_sealwork_side_seals_each_request_and_stores_the_clear_statements() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _SEALWORK_PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(BALLAST), str(ROOT)]), "LRS_BENCH_SEAL_DISCARD": "1"},
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["same"]  # the Statements prepared are the clear ones
    assert found["forms"] == 6 and found["texts"] == ["v4."]  # five actors and the authority, sealed and kept


def test_the_copywork_side_makes_the_walks_copies_and_stores_the_clear_statements() -> None:
    probe = _SEALWORK_PROBE.split("held = next")[0] + (
        "print(json.dumps({'wrapped': s.prepare_statements.__qualname__,"
        " 'same': [p.body for p in mine] == [p.body for p in real(statements, **kw)]}))\n")
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(BALLAST), str(ROOT)]), "LRS_BENCH_SEAL_DISCARD": "copy"},
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["wrapped"].startswith("_wrap_copies") and found["same"]


_GRADUAL_PROBE = """
import json
import lrs.http.statements as s
""" + _PREPARE + """
sizes = []
for count in (0, 3, 4, 4):
    prepare([{}] * count)
    held = next(c.cell_contents for c in s.prepare_statements.__closure__ if isinstance(c.cell_contents, list))
    forms, current, pseudonyms, own = held[0]
    sizes.append([len(forms), len(current), len(pseudonyms), len(own)])
print(json.dumps(sizes))
"""


def test_the_gradual_ballast_grows_one_learner_a_statement_up_to_the_count() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _GRADUAL_PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(BALLAST), str(ROOT)]),
             "LRS_BENCH_BALLAST": "10", "LRS_BENCH_BALLAST_GRADUAL": "1"},
    )
    assert run.returncode == 0, run.stderr
    sizes = json.loads(run.stdout.strip().splitlines()[-1])
    assert [s[0] for s in sizes] == [0, 3, 7, 10]  # not all at the first request; never past the count
    assert all(len(set(s)) == 1 for s in sizes)  # each learner's form, key, pseudonym and entry alike
