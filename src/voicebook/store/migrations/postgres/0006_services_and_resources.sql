-- voicebook 0006: services, staff and rooms (the business file). An appointment is for one service
-- and holds its resources (a staff member, and a room when its service needs one) for its blocked
-- span: start minus the service's buffer before to end plus its buffer after. The database
-- refuses two overlapping active holds of one resource, so buffers are guarded as firmly as the
-- appointments themselves, whatever the lengths, and a booking that needs a staff member and a
-- room takes both or neither (one transaction). This replaces appointments_no_overlap.
ALTER TABLE appointments ADD COLUMN service text NOT NULL DEFAULT 'appointment';
-- The room the appointment also holds, if its service needs one.
ALTER TABLE appointments ADD COLUMN room text;

CREATE TABLE resource_holds (
    appointment_id  text NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    resource        text NOT NULL,
    blocked_from    timestamptz NOT NULL,
    blocked_until   timestamptz NOT NULL,
    -- true while the appointment is confirmed; a cancelled or moved one frees its resources.
    active          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (appointment_id, resource),
    CONSTRAINT resource_holds_valid_span CHECK (blocked_until > blocked_from),
    CONSTRAINT resource_holds_no_overlap EXCLUDE USING gist (
        resource WITH =,
        tstzrange(blocked_from, blocked_until, '[)') WITH &&
    ) WHERE (active)
);
CREATE INDEX resource_holds_resource_from ON resource_holds (resource, blocked_from) WHERE active;
ALTER TABLE resource_holds ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = api_role) THEN
            EXECUTE format('REVOKE ALL PRIVILEGES ON TABLE resource_holds FROM %I', api_role);
        END IF;
    END LOOP;
END
$$;

-- Existing appointments hold their own resource for their booked span (their buffer, if any,
-- was checked when they were booked).
INSERT INTO resource_holds (appointment_id, resource, blocked_from, blocked_until, active)
SELECT id, resource, starts_at, ends_at, true FROM appointments WHERE status = 'confirmed';
ALTER TABLE appointments DROP CONSTRAINT appointments_no_overlap;
DROP INDEX appointments_resource_starts;
