-- voicebook 0011: named console accounts, so each change from the console says which person made
-- it. `name` is the sign-in name (lower case); `password_hash` an Argon2id PHC string, never the
-- password. Removing an account keeps what it did: appointments name it by text, not by key.
CREATE TABLE operators (
    name TEXT PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,39}$'),
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE operators ENABLE ROW LEVEL SECURITY;
-- The account behind an operator's change (changed_by = 'operator'); NULL for the service key,
-- the shared console password, and every change before this version.
ALTER TABLE appointments ADD COLUMN changed_by_operator TEXT;
