-- The statements/read/mine scope: a credential holding only that scope reads
-- the Statements whose authority is the one the LRS assigns to it.  The
-- authority's IFI key goes into filter_keys as 'U:<ifi key>' (lrs/batching.py
-- filter_keys), so the existing GIN index serves that filter too and no new
-- column is needed.  This backfills rows written before the key existed; the
-- LRS always records authority as an account Agent (lrs/http/statements.py
-- authority_for), whose IFI key is 'account:<homePage>|<name>'.
UPDATE statements
SET filter_keys = filter_keys || (
    'U:account:'
    || (convert_from(body, 'UTF8')::jsonb #>> '{authority,account,homePage}')
    || '|'
    || (convert_from(body, 'UTF8')::jsonb #>> '{authority,account,name}')
)
WHERE convert_from(body, 'UTF8')::jsonb #> '{authority,account}' IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM unnest(filter_keys) AS k WHERE k LIKE 'U:%');
