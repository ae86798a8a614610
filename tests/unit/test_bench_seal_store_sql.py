"""bench/seal_store_sql.py --tree CHECKOUT runs another checkout's SQL (the
A/B docs/privacy.md "Cost" re-runs against main): it must still load a
checkout from before lrs.store.learner_keys was split, whose key statement
(LOAD_OR_CREATE) is in lrs.store.learner_keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "seal_store_sql.py"

# The names the bench imports from the checkout it is given, as a checkout
# before the split holds them (stand-ins: only the imports are exercised).
_BEFORE_THE_SPLIT = {
    "lrs/__init__.py": "",
    "lrs/runtime/__init__.py": "",
    "lrs/runtime/postgres.py": "EmbeddedPostgres = None\n",
    "lrs/service.py": "migrate = None\n",
    "lrs/store/__init__.py": "",
    "lrs/store/learner_keys.py": "LOAD_OR_CREATE = 'SELECT 1'\n",
    "lrs/store/sealed_identities.py": "INSERT_CIPHERTEXTS = 'SELECT 1'\n",
}


def test_the_bench_loads_a_checkout_from_before_the_learner_keys_split(tmp_path: Path) -> None:
    for name, text in _BEFORE_THE_SPLIT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    run = subprocess.run([sys.executable, str(BENCH), "--tree", str(tmp_path), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "--tree" in run.stdout
