"""bench/statement_key_rows_sql.py gives each form the keys literals its
checkout's writer sends: main 54b7590 every filter key (its SQL dropped the
authority's 'U:' key), this checkout neither the 'U:' key nor the Agent
authority's related agent key ('a:', lrs.store.group_columns.key_literal)."""

from __future__ import annotations

from pathlib import Path

from bench import statement_key_rows_sql

AUTHORITY = "account:http://lrs.example|bench"  # the bench's credential's Agent


def test_each_form_gets_the_keys_its_checkouts_writer_sends(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(statement_key_rows_sql.__file__).parent))  # its `import ingest`
    at_54b7590, here, verbs = statement_key_rows_sql._keys()
    assert len(at_54b7590) == len(here) == len(verbs) == 100
    for sent_then, sent_now in zip(at_54b7590, here):
        assert sent_then.endswith(f'"U:{AUTHORITY}"}}') and f'"a:{AUTHORITY}"' in sent_then, sent_then
        assert "U:" not in sent_now and f'"a:{AUTHORITY}"' not in sent_now, sent_now
        # otherwise the same keys
        assert _elements(sent_then) - {f"U:{AUTHORITY}", f"a:{AUTHORITY}"} == _elements(sent_now)


def _elements(literal: str) -> set[str]:
    return set(literal.removeprefix('{"').removesuffix('"}').split('","'))
