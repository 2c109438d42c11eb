-- voicebook 0003: how far the session's caller is proved (DESIGN §4 identity levels), one-time
-- verification codes (stored hashed), and what a session's LiveKit tokens were minted for.
ALTER TABLE sessions ADD COLUMN identity_level text
    CHECK (identity_level IN ('claimed', 'verified', 'trusted'));
-- The name the caller gave in this session: a claim never overwrites users.name.
ALTER TABLE sessions ADD COLUMN caller_name text;
ALTER TABLE sessions ADD COLUMN livekit_identity text;
ALTER TABLE sessions ADD COLUMN token_mints integer NOT NULL DEFAULT 0;
-- Ended sessions by end time, for retention.
CREATE INDEX sessions_ended_at ON sessions (ended_at) WHERE state = 'ended';

CREATE TABLE verification_codes (
    id          text PRIMARY KEY,
    session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    phone       text NOT NULL,
    -- salt$sha256(salt || code) for codes voicebook makes; NULL when the provider keeps the code.
    code_hash   text,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    verified_at timestamptz
);
-- Sends per number in a window (rate limit), newest code of a session.
CREATE INDEX verification_codes_phone_created ON verification_codes (phone, created_at);
CREATE INDEX verification_codes_session_created ON verification_codes (session_id, created_at);
