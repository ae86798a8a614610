"""The chain depth the writer gives keys for and the one migration 0097 filled
stores with are the reader's: a shallower fill would miss matches."""

from lrs.contracts import POSTGRES_MIGRATIONS
from lrs.store import reader, ref_keys


def test_the_writer_the_migration_and_the_reader_follow_chains_equally_far() -> None:
    assert reader.MAX_REF_DEPTH == ref_keys.MAX_REF_DEPTH
    assert f"b.depth < {ref_keys.MAX_REF_DEPTH}" in ref_keys.SELECT_CHAINS
    assert f"c.depth < {ref_keys.MAX_REF_DEPTH}" in ref_keys.SELECT_CHAINS
    fill = (POSTGRES_MIGRATIONS / "0097_statement_ref_keys.sql").read_text()
    assert f"WHERE c.depth < {ref_keys.MAX_REF_DEPTH}\n" in fill
