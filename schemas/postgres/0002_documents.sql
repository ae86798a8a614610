-- Document resources (State, Activity Profile, Agent Profile) and the
-- canonical Activity definitions.
--
-- Every document write is an event of type 'document' in the events log
-- (lrs/documents/events.py defines its payload); this table is the read
-- model of those events, written in the same transaction.

CREATE TABLE documents (
    tenant        text        NOT NULL,
    resource      text        NOT NULL CHECK (resource IN ('state', 'activity_profile', 'agent_profile')),
    activity_id   text        NOT NULL,   -- '' for Agent Profile documents
    agent_key     text        NOT NULL,   -- ifi_key of the agent; '' for Activity Profile documents
    registration  text        NOT NULL,   -- State only; '' when none
    document_id   text        NOT NULL,   -- stateId or profileId
    content_type  text        NOT NULL,
    content       bytea       NOT NULL,   -- exactly the bytes stored
    etag          text        NOT NULL,   -- quoted SHA-1 hex of content
    updated       timestamptz NOT NULL,   -- stored time of the event that wrote this version
    position      bigint      NOT NULL,   -- that event's position
    -- The primary key's prefixes serve listing and deleting a context's documents.
    PRIMARY KEY (tenant, resource, activity_id, agent_key, registration, document_id)
);

-- Canonical Activity definitions, folded from statement events sent by
-- credentials with the 'define' scope (lrs/documents/activities.py).  The
-- fold catches up from the log on demand; its position is the checkpoint.
CREATE TABLE activity_definitions (
    tenant      text   NOT NULL,
    activity_id text   NOT NULL,
    definition  bytea  NOT NULL,   -- JSON object
    position    bigint NOT NULL,   -- last event that changed it
    PRIMARY KEY (tenant, activity_id)
);

CREATE TABLE activity_definitions_checkpoint (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL
);

INSERT INTO activity_definitions_checkpoint (singleton, position) VALUES (true, 0);
