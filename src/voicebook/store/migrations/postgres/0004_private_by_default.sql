-- voicebook 0004: private by default (DESIGN §5: on Supabase nothing voicebook stores is readable
-- or writable through the project's public API keys).
--
-- Row-level security on every table, with no policies: a role that is not the owner sees no rows
-- and changes none, whatever it was granted. voicebook connects as the owner, which RLS does not
-- restrict (it is not FORCEd), so it works unchanged. Every later migration that adds a table
-- must enable RLS on it too (tests/test_supabase_exposure.py checks).
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE verification_codes ENABLE ROW LEVEL SECURITY;

-- Supabase's API roles lose the grants its default privileges gave them on these tables (TRUNCATE
-- among them, which RLS does not cover). voicebook creates no sequences or functions. On plain
-- Postgres these roles do not exist and nothing happens.
DO $$
DECLARE
    api_role text;
BEGIN
    FOREACH api_role IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = api_role) THEN
            EXECUTE format(
                'REVOKE ALL PRIVILEGES ON TABLE schema_migrations, users, sessions, appointments,'
                ' session_events, idempotency_keys, verification_codes FROM %I',
                api_role
            );
        END IF;
    END LOOP;
END
$$;

-- btree_gist out of public (Supabase exposes public through its API, and its linter warns about
-- extensions there): into the schema `extensions`, where Supabase keeps them. Left alone when it
-- already lives elsewhere. appointments_no_overlap refers to its operator class by identity, not by
-- name, so the constraint keeps working after the move.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'btree_gist' AND n.nspname = 'public'
    ) THEN
        CREATE SCHEMA IF NOT EXISTS extensions;
        ALTER EXTENSION btree_gist SET SCHEMA extensions;
    END IF;
END
$$;
