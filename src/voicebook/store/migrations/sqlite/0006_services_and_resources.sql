-- voicebook 0006: services, staff and rooms. An appointment holds its resources (a staff member,
-- and a room when its service needs one) for its blocked span (start − buffer before, end + buffer
-- after); triggers refuse two overlapping active holds of one resource. Writers run in BEGIN
-- IMMEDIATE transactions, so check and write cannot interleave. Replaces the appointment triggers.
ALTER TABLE appointments ADD COLUMN service TEXT NOT NULL DEFAULT 'appointment';
ALTER TABLE appointments ADD COLUMN room TEXT;

CREATE TABLE resource_holds (
    appointment_id  TEXT NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    resource        TEXT NOT NULL,
    blocked_from    TEXT NOT NULL,
    blocked_until   TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    PRIMARY KEY (appointment_id, resource),
    CHECK (blocked_until > blocked_from)
);
CREATE INDEX resource_holds_resource_from ON resource_holds (resource, blocked_from)
    WHERE active = 1;

-- A blocked span lasts at most two days (a day-long appointment and its buffers), which bounds the
-- index range each check scans.
CREATE TRIGGER resource_holds_no_overlap_insert BEFORE INSERT ON resource_holds
WHEN NEW.active = 1 AND EXISTS (
    SELECT 1 FROM resource_holds AS h
    WHERE h.resource = NEW.resource AND h.active = 1
      AND h.blocked_from >= strftime('%Y-%m-%dT%H:%M:%fZ', NEW.blocked_from, '-2 days')
      AND h.blocked_from < NEW.blocked_until AND h.blocked_until > NEW.blocked_from
)
BEGIN
    SELECT RAISE(ABORT, 'resource_holds_no_overlap');
END;

CREATE TRIGGER resource_holds_no_overlap_update
BEFORE UPDATE OF active, resource, blocked_from, blocked_until ON resource_holds
WHEN NEW.active = 1 AND EXISTS (
    SELECT 1 FROM resource_holds AS h
    WHERE h.resource = NEW.resource AND h.active = 1
      AND NOT (h.appointment_id = NEW.appointment_id AND h.resource = OLD.resource)
      AND h.blocked_from >= strftime('%Y-%m-%dT%H:%M:%fZ', NEW.blocked_from, '-2 days')
      AND h.blocked_from < NEW.blocked_until AND h.blocked_until > NEW.blocked_from
)
BEGIN
    SELECT RAISE(ABORT, 'resource_holds_no_overlap');
END;

INSERT INTO resource_holds (appointment_id, resource, blocked_from, blocked_until, active)
SELECT id, resource, starts_at, ends_at, 1 FROM appointments WHERE status = 'confirmed';
DROP TRIGGER appointments_no_overlap_insert;
DROP TRIGGER appointments_no_overlap_update;
DROP INDEX appointments_resource_starts;
