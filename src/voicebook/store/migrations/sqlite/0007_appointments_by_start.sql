-- voicebook 0007: the business's day (GET /business/appointments) reads appointments by start,
-- keyset-paged on (starts_at, id), of every resource and status: an index in that order, so a
-- page costs the same however many appointments the table holds.
CREATE INDEX appointments_starts ON appointments (starts_at, id);
