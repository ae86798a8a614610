-- Roster and identity changes are events of the log (event types 'roster'
-- and 'identity', appended under the log head lock like every other write):
-- a replay reads them alone, through this index, to rebuild the roster.
CREATE INDEX events_roster ON events (position) WHERE event_type IN ('roster', 'identity');
