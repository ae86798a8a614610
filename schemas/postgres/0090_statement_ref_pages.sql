-- Filtered pages of GET /statements check the StatementRef rule only for the
-- referring statements inside the page's window (lrs/store/reader.py): walk
-- them by position.  Referring statements are few, so the index is small.
CREATE INDEX statements_tenant_ref_position ON statements (tenant, position)
    WHERE statement_ref IS NOT NULL;

-- Statistics that keep up with a growing read model.  With the defaults
-- (ANALYZE after a tenth of the table changed, VACUUM after a fifth was
-- inserted) a store loaded in bulk is planned for a fraction of its size for
-- a long while, and the GIN index's pending list (entries not yet merged,
-- read by every filter_keys scan) is merged only by VACUUM or once it holds
-- 4 MB.  Analyse after 2 % (at least 10,000 rows), vacuum inserts after 5 %.
ALTER TABLE statements SET (
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_insert_threshold = 10000
);
