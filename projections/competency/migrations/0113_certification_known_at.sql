-- When the LRS first held evidence that earns each certification (by the
-- statements' stored times: the "known" clock; earned_at is the "achieved"
-- clock, by their timestamps).  Filled by `lrs replay competency` (the rule
-- version changed with it).
ALTER TABLE competency_certifications ADD COLUMN known_at timestamptz;
