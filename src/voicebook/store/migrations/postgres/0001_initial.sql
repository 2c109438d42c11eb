-- voicebook 0001: users, sessions, appointments, session events, idempotency keys.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE users (
    id          text PRIMARY KEY,
    phone       text NOT NULL UNIQUE,
    name        text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE sessions (
    id             text PRIMARY KEY,
    state          text NOT NULL DEFAULT 'connected'
                   CHECK (state IN ('connected', 'active', 'ended')),
    user_id        text REFERENCES users (id),
    last_event_id  bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    end_reason     text,
    summary        jsonb,
    preferences    jsonb NOT NULL DEFAULT '[]',
    recap          text
);

CREATE TABLE appointments (
    id                text PRIMARY KEY,
    user_id           text NOT NULL REFERENCES users (id),
    resource          text NOT NULL DEFAULT 'default',
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'confirmed'
                      CHECK (status IN ('confirmed', 'cancelled', 'rescheduled')),
    name              text,
    notes             text,
    session_id        text REFERENCES sessions (id),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    cancel_reason     text,
    cancelled_at      timestamptz,
    rescheduled_from  text REFERENCES appointments (id),
    CONSTRAINT appointments_valid_range CHECK (ends_at > starts_at),
    -- The database itself refuses two confirmed appointments of one resource that overlap.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        resource WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status = 'confirmed')
);
CREATE INDEX appointments_user_starts ON appointments (user_id, starts_at);
CREATE INDEX appointments_resource_starts ON appointments (resource, starts_at)
    WHERE status = 'confirmed';
CREATE INDEX appointments_session ON appointments (session_id);

CREATE TABLE session_events (
    session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id          bigint NOT NULL,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    outcome       text CHECK (outcome IN ('ok', 'error')),
    body          jsonb,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
