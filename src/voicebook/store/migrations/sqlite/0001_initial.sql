-- voicebook 0001 (SQLite mirror of the Postgres schema). Instants are UTC text in the fixed form
-- YYYY-MM-DDTHH:MM:SS.sssZ, so text order is time order; JSON is stored as text.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    phone       TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL DEFAULT 'connected'
                   CHECK (state IN ('connected', 'active', 'ended')),
    user_id        TEXT REFERENCES users (id),
    last_event_id  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    ended_at       TEXT,
    end_reason     TEXT,
    summary        TEXT,
    preferences    TEXT NOT NULL DEFAULT '[]',
    recap          TEXT
);

CREATE TABLE appointments (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    resource          TEXT NOT NULL DEFAULT 'default',
    starts_at         TEXT NOT NULL,
    ends_at           TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'confirmed'
                      CHECK (status IN ('confirmed', 'cancelled', 'rescheduled')),
    name              TEXT,
    notes             TEXT,
    session_id        TEXT REFERENCES sessions (id),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    cancel_reason     TEXT,
    cancelled_at      TEXT,
    rescheduled_from  TEXT REFERENCES appointments (id),
    CHECK (ends_at > starts_at)
);
CREATE INDEX appointments_user_starts ON appointments (user_id, starts_at);
CREATE INDEX appointments_resource_starts ON appointments (resource, starts_at)
    WHERE status = 'confirmed';
CREATE INDEX appointments_session ON appointments (session_id);

-- The database itself refuses two confirmed appointments of one resource that overlap. Writers run
-- in BEGIN IMMEDIATE transactions, so check and write cannot interleave with another writer.
-- Appointments last at most a day, which bounds the index range each check scans.
CREATE TRIGGER appointments_no_overlap_insert BEFORE INSERT ON appointments
WHEN NEW.status = 'confirmed' AND EXISTS (
    SELECT 1 FROM appointments AS a
    WHERE a.resource = NEW.resource AND a.status = 'confirmed'
      AND a.starts_at >= strftime('%Y-%m-%dT%H:%M:%fZ', NEW.starts_at, '-1 day')
      AND a.starts_at < NEW.ends_at AND a.ends_at > NEW.starts_at
)
BEGIN
    SELECT RAISE(ABORT, 'appointments_no_overlap');
END;

CREATE TRIGGER appointments_no_overlap_update
BEFORE UPDATE OF status, starts_at, ends_at, resource ON appointments
WHEN NEW.status = 'confirmed' AND EXISTS (
    SELECT 1 FROM appointments AS a
    WHERE a.resource = NEW.resource AND a.status = 'confirmed' AND a.id <> NEW.id
      AND a.starts_at >= strftime('%Y-%m-%dT%H:%M:%fZ', NEW.starts_at, '-1 day')
      AND a.starts_at < NEW.ends_at AND a.ends_at > NEW.starts_at
)
BEGIN
    SELECT RAISE(ABORT, 'appointments_no_overlap');
END;

CREATE TABLE session_events (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    outcome       TEXT CHECK (outcome IN ('ok', 'error')),
    body          TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
