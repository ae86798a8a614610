-- The count of learner erasures (lrs/store/erasure.py, docs/privacy.md).
-- An erasure adds one under the log head lock; the statement writer reads it
-- with the head it locks, so a Statement sealed by a process that had not
-- yet heard of an erasure is checked against learner_keys before it is
-- written (a key destroyed meanwhile is never written under).
ALTER TABLE log_head ADD COLUMN key_epoch bigint NOT NULL DEFAULT 0;
