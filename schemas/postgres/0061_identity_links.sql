-- A person's agent identifiers (lrs/identities.py): an identifier (an actor's
-- IFI key: an account on another platform, an mbox, ...) linked to a person
-- (the IFI key the roster names).  Written with the 'identity' events of the
-- log that link and unlink them; a link ended by an unlink keeps its row, so
-- the history stays.  Rebuilt from those events by `lrs replay competency`.
CREATE TABLE identity_links (
    tenant            text        NOT NULL,
    identifier        text        NOT NULL,
    person            text        NOT NULL,
    linked_position   bigint      NOT NULL,
    linked_at         timestamptz NOT NULL,
    unlinked_position bigint,
    unlinked_at       timestamptz,
    PRIMARY KEY (tenant, identifier, linked_position)
);

-- An identifier belongs to one person at a time.
CREATE UNIQUE INDEX identity_links_current ON identity_links (tenant, identifier) WHERE unlinked_position IS NULL;
CREATE INDEX identity_links_person ON identity_links (tenant, person) WHERE unlinked_position IS NULL;
CREATE INDEX identity_links_linked ON identity_links (linked_position);
CREATE INDEX identity_links_unlinked ON identity_links (unlinked_position) WHERE unlinked_position IS NOT NULL;
