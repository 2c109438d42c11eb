-- voicebook 0008: the console's Calls tab lists sessions newest first, keyset-paged on
-- (created_at, id): an index in that order, so a page costs the same however many sessions the
-- table holds.
CREATE INDEX sessions_created ON sessions (created_at, id);
