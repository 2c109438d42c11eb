-- voicebook 0003: how far the session's caller is proved, one-time verification codes (hashed),
-- and what a session's LiveKit tokens were minted for.
ALTER TABLE sessions ADD COLUMN identity_level TEXT
    CHECK (identity_level IN ('claimed', 'verified', 'trusted'));
ALTER TABLE sessions ADD COLUMN caller_name TEXT;
ALTER TABLE sessions ADD COLUMN livekit_identity TEXT;
ALTER TABLE sessions ADD COLUMN token_mints INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sessions_ended_at ON sessions (ended_at) WHERE state = 'ended';

CREATE TABLE verification_codes (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    phone       TEXT NOT NULL,
    code_hash   TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    verified_at TEXT
);
CREATE INDEX verification_codes_phone_created ON verification_codes (phone, created_at);
CREATE INDEX verification_codes_session_created ON verification_codes (session_id, created_at);
