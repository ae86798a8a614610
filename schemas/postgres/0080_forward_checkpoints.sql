-- lrs forward: the highest log position each forwarder (by --name) has dealt
-- with (accepted by its target, parked, or not selected by its filter).  A
-- message delivered for the first time at or below it is a second copy of an
-- event already forwarded (a replay published to the stream, or a relay
-- republishing after the stream's duplicate window) and is not sent again.
-- Redeliveries of unacknowledged messages are sent again: the target accepts
-- a statement id it already holds as the same statement (docs/trust.md).
CREATE TABLE forward_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
