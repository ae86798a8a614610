-- With linked identifiers a statement's evidence goes to the person its
-- actor is linked to; the actor is kept (NULL: the learner itself) so an
-- unlink can give the person's evidence from that identifier back to it.
ALTER TABLE competency_statement_learners ADD COLUMN actor text;
CREATE INDEX competency_statement_learners_actor ON competency_statement_learners (tenant, learner, actor)
    WHERE actor IS NOT NULL;
