"""bench/mine_queries.py --reader times another checkout's reader on that
checkout's own page SQL (lrs/store/page_query.py and statement_walks.py,
split out of reader.py), and leaves this tree's modules in place."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import lrs.store.page_query
import lrs.store.statement_walks

REPO = Path(__file__).resolve().parents[2]


def _mine_queries():
    spec = importlib.util.spec_from_file_location("bench_mine_queries", REPO / "bench" / "mine_queries.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_other_checkouts_reader_runs_on_its_own_page_sql(tmp_path: Path) -> None:
    store = tmp_path / "lrs" / "store"
    store.mkdir(parents=True)
    (store / "statement_walks.py").write_text("WALKS = 'the checkout\\'s walks'\n")
    (store / "page_query.py").write_text(
        "from lrs.store.statement_walks import WALKS\n\ndef build_page_query():\n    return WALKS\n")
    (store / "reader.py").write_text("from lrs.store.page_query import build_page_query\n")
    reader = _mine_queries().load_reader(tmp_path)
    assert reader.build_page_query() == "the checkout's walks"
    assert sys.modules["lrs.store.page_query"] is lrs.store.page_query
    assert sys.modules["lrs.store.statement_walks"] is lrs.store.statement_walks


def test_a_checkout_from_before_the_split_loads_its_reader_alone(tmp_path: Path) -> None:
    store = tmp_path / "lrs" / "store"
    store.mkdir(parents=True)
    (store / "reader.py").write_text("def build_page_query():\n    return 'in reader.py'\n")
    assert _mine_queries().load_reader(tmp_path).build_page_query() == "in reader.py"
    assert sys.modules["lrs.store.page_query"] is lrs.store.page_query
