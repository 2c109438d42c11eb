-- voicebook 0011: named console accounts, so each change from the console says which person made
-- it. `name` is the sign-in name (lower case); `password_hash` an Argon2id PHC string, never the
-- password. Removing an account keeps what it did: appointments name it by text, not by key.
CREATE TABLE operators (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 40 AND name = lower(name)),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- The account behind an operator's change (changed_by = 'operator'); NULL for the service key,
-- the shared console password, and every change before this version.
ALTER TABLE appointments ADD COLUMN changed_by_operator TEXT;
