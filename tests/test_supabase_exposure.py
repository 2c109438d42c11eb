"""On Supabase nothing voicebook stores is readable or writable through the public API keys
(DESIGN §5, issue 9 "Exposure").

Supabase's API roles (`anon`, `authenticated`) get USAGE on schema public and, by default
privileges, ALL on every table, sequence and function created there. voicebook's schema enables
row-level security with no policies on every table it creates, so such a role sees no rows and
changes none, while voicebook, connecting as the owner, works unchanged; `btree_gist` lives in the
schema `extensions`, where Supabase's linter wants extensions.

Roles are global to the cluster: each test makes its own, with a random name, and drops it.
Every database is a fresh one from the conftest fixtures.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conftest import ADMIN_URL
from helpers import call, key
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.errors import DomainError
from voicebook.scheduling.service import SchedulingService
from voicebook.server.console.accounts import add_account
from voicebook.store.migrations import MIGRATIONS_TABLE, load_migrations
from voicebook.store.postgres import PostgresStore

SUPABASE_SCHEMA = Path(__file__).resolve().parents[1] / "supabase_schema.sql"
VOICEBOOK_TABLES = {
    "schema_migrations",
    "users",
    "sessions",
    "appointments",
    "session_events",
    "idempotency_keys",
    "verification_codes",
}
LATER_TABLES = {"resource_holds", "operators"}
"""Tables made after 0004, each enabling row-level security itself (0006, 0011)."""
ALL_TABLES = VOICEBOOK_TABLES | LATER_TABLES
PRIVATE_BY_DEFAULT = 4
"""The migration that makes the schema private (0004_private_by_default)."""
NINE_AM = "2027-03-02T09:00:00-05:00"  # Tuesday, inside opening hours, past minimum notice
TEN_AM = "2027-03-02T10:00:00-05:00"
NOW = datetime(2027, 3, 1, 13, 15, tzinfo=timezone.utc)
PHONE = "415 555 0123"

# A valid new row per table, for the API role to try to insert (every one must be refused).
NEW_ROWS: dict[str, dict[str, Any]] = {
    "schema_migrations": {"version": 9999, "name": "evil"},
    "users": {"id": "u-evil", "phone": "+12125550199", "created_at": NOW, "updated_at": NOW},
    "sessions": {"id": "s-evil", "created_at": NOW, "updated_at": NOW},
    "appointments": {
        "id": "a-evil",
        "user_id": "u-evil",
        "starts_at": NOW,
        "ends_at": datetime(2027, 3, 1, 14, 15, tzinfo=timezone.utc),
        "created_at": NOW,
        "updated_at": NOW,
    },
    "session_events": {
        "session_id": "s-evil",
        "id": 1,
        "type": "status",
        "payload": "{}",
        "created_at": NOW,
    },
    "idempotency_keys": {
        "scope": "evil",
        "key": "evil",
        "request_hash": "x",
        "created_at": NOW,
    },
    "verification_codes": {
        "id": "v-evil",
        "session_id": "s-evil",
        "phone": "+12125550199",
        "created_at": NOW,
        "expires_at": NOW,
    },
    "resource_holds": {
        "appointment_id": "a-evil",
        "resource": "default",
        "blocked_from": NOW,
        "blocked_until": datetime(2027, 3, 1, 14, 15, tzinfo=timezone.utc),
    },
    "operators": {
        "name": "mallory",
        "password_hash": "$argon2id$forged",
        "created_at": NOW,
        "updated_at": NOW,
    },
}
# A column per table the API role tries to overwrite (UPDATE t SET col = value).
OVERWRITE: dict[str, tuple[str, Any]] = {
    "schema_migrations": ("name", "evil"),
    "users": ("name", "Mallory"),
    "sessions": ("state", "ended"),
    "appointments": ("status", "cancelled"),
    "session_events": ("type", "evil"),
    "idempotency_keys": ("outcome", "error"),
    "verification_codes": ("attempts", 0),
    "resource_holds": ("active", False),
    "operators": ("password_hash", "$argon2id$forged"),
}


# --- helpers --------------------------------------------------------------------------------------


class Roles:
    """Throwaway cluster roles; each is dropped at the end, after its grants in every database."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.databases: set[str] = set()

    def create(self, kind: str) -> str:
        name = f"vb_{kind}_{secrets.token_hex(4)}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
        self.names.append(name)
        return name

    def grant_supabase_defaults(self, url: str, role: str) -> None:
        """What Supabase gives `anon` and `authenticated` in schema public, before any table
        exists: USAGE on the schema and, by default privileges, ALL on what is created there."""
        self.databases.add(url)
        ident = sql.Identifier(role)
        with psycopg.connect(url, autocommit=True) as owner:
            owner.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
            for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
                grant = "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON {} TO {}"
                owner.execute(sql.SQL(grant).format(sql.SQL(kind), ident))

    def grant_everything(self, url: str, role: str) -> None:
        """The worst case: ALL on every table, sequence and function already in public."""
        self.databases.add(url)
        ident = sql.Identifier(role)
        with psycopg.connect(url, autocommit=True) as owner:
            for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
                owner.execute(
                    sql.SQL("GRANT ALL ON ALL {} IN SCHEMA public TO {}").format(
                        sql.SQL(kind), ident
                    )
                )

    def drop_all(self) -> None:
        for url in self.databases:
            try:
                conn = psycopg.connect(url, autocommit=True)
            except psycopg.OperationalError:
                continue  # the database is gone, and its grants with it
            with conn:
                for name in self.names:
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            for name in self.names:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def roles() -> Iterator[Roles]:
    made = Roles()
    yield made
    made.drop_all()


async def migrate(url: str) -> list[int]:
    """`voicebook db migrate`, as the store does it; the versions it applied."""
    store = PostgresStore(url, check_schema=False)
    await store.open()
    try:
        return [m.version for m in await store.migrate()]
    finally:
        await store.close()


def migrate_up_to(url: str, version: int, *, replace: dict[str, str] | None = None) -> None:
    """Apply the Postgres migrations up to `version` and record them, as the store would (an
    install made before the later ones existed). `replace` rewrites the last one's text."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
        migrations = [
            m for m in load_migrations("postgres") if m.version <= version and m.version not in done
        ]
        assert migrations and migrations[-1].version == version
        for migration in migrations:
            text = migration.sql
            if migration.version == version:
                for old, new in (replace or {}).items():
                    assert old in text, f"{old!r} is not in migration {version}"
                    text = text.replace(old, new)
            conn.execute(text.encode())
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )


def apply_supabase_schema(url: str) -> None:
    """What pasting supabase_schema.sql into Supabase's SQL editor does."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SUPABASE_SCHEMA.read_text(encoding="utf-8").encode())


def extension_schema(url: str, name: str = "btree_gist") -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = %s",
            (name,),
        ).fetchone()
    return None if row is None else row[0]


def tables_without_rls(url: str) -> list[str]:
    """Every table in the database (outside the system catalogs) without row-level security."""
    with psycopg.connect(url) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND NOT c.relrowsecurity"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg\\_toast%%' ORDER BY 1"
            )
        ]


def lint_findings(url: str) -> list[str]:
    """Supabase's linter, for what it says about voicebook's schema: a table in public without
    row-level security (lint 0013, an ERROR) or an extension in public (lint 0014)."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT 'rls_disabled_in_public: ' || c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity"
        ).fetchall()
        extensions = conn.execute(
            "SELECT 'extension_in_public: ' || e.extname FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE n.nspname = 'public' AND e.extname <> 'plpgsql'"
        ).fetchall()
    return sorted(row[0] for row in tables + extensions)


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in sorted(ALL_TABLES)
        }


def table_snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every voicebook table, as the owner sees it."""
    with psycopg.connect(url) as conn:
        return {
            table: sorted(
                conn.execute(
                    sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.Identifier(table))
                ).fetchall()
            )
            for table in sorted(ALL_TABLES)
        }


def service_on(store: PostgresStore, rules: AvailabilityRules, clock: object) -> SchedulingService:
    return SchedulingService(store, rules, default_region="US", clock=clock)  # type: ignore[arg-type]


async def book_through_voicebook(
    url: str, rules: AvailabilityRules, clock: object, start: str = NINE_AM
) -> str:
    """A caller books through voicebook's own service; the appointment's id."""
    async with PostgresStore(url) as store:
        service = service_on(store, rules, clock)
        session = await service.start_session()
        await call(service, "identify_user", session.id, phone=PHONE, name="Ann Lee")
        booked = await call(
            service, "book_appointment", session.id, start=start, notes="knee surgery follow-up"
        )
        return booked.appointment.id


def add_verification_code(url: str) -> None:
    """A verification code row as the owner (so that every table holds something to steal)."""
    with psycopg.connect(url, autocommit=True) as conn:
        session_id = conn.execute("SELECT id FROM sessions LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO verification_codes (id, session_id, phone, code_hash, created_at,"
            " expires_at) VALUES ('v1', %s, '+14155550123', 'salt$hash', %s, %s)",
            (session_id, NOW, NOW),
        )


def insert_overlapping(conn: psycopg.Connection[Any], appointment_id: str) -> None:
    """As the owner: a confirmed appointment overlapping `appointment_id` on its resource, and
    its hold (what the exclusion constraint guards)."""
    conn.execute(
        "INSERT INTO appointments (id, user_id, resource, starts_at, ends_at, status,"
        " created_at, updated_at)"
        " SELECT 'overlap', user_id, resource, starts_at + interval '15 minutes',"
        " ends_at + interval '15 minutes', 'confirmed', created_at, updated_at"
        " FROM appointments WHERE id = %s",
        (appointment_id,),
    )
    conn.execute(
        "INSERT INTO resource_holds (appointment_id, resource, blocked_from, blocked_until)"
        " SELECT 'overlap', resource, starts_at, ends_at FROM appointments WHERE id = 'overlap'"
    )


def book_as_before(url: str) -> str:
    """A booking as an install from before schema 0006 wrote it (an appointments row and no
    hold): what the migration must carry over."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, phone, name, created_at, updated_at)"
            " VALUES ('usr_before', %s, 'Ann Lee', %s, %s)",
            ("+14155550123", NOW, NOW),
        )
        conn.execute(
            "INSERT INTO appointments (id, user_id, resource, starts_at, ends_at, status,"
            " notes, created_at, updated_at) VALUES ('apt_before', 'usr_before', 'default',"
            " %s, %s::timestamptz + interval '30 minutes', 'confirmed',"
            " 'knee surgery follow-up', %s, %s)",
            (NINE_AM, NINE_AM, NOW, NOW),
        )
    return "apt_before"


def assert_database_refuses_overlap(url: str, appointment_id: str) -> None:
    """The exclusion constraint itself (not voicebook's own check) refuses an overlap."""
    with (
        pytest.raises(psycopg.errors.ExclusionViolation),
        psycopg.connect(url) as conn,  # one transaction: the refused hold rolls it all back
    ):
        insert_overlapping(conn, appointment_id)


# --- an API role reads nothing and changes nothing ------------------------------------------------


@pytest.mark.parametrize("kind", ["anon", "authenticated"])
async def test_a_role_with_supabase_api_grants_reads_and_changes_nothing(
    kind: str, empty_pg_url: str, roles: Roles, rules: AvailabilityRules, clock: object
) -> None:
    role = roles.create(kind)
    roles.grant_supabase_defaults(empty_pg_url, role)  # before migrating, as on Supabase
    await migrate(empty_pg_url)
    roles.grant_everything(empty_pg_url, role)  # and the worst case after it
    appointment_id = await book_through_voicebook(empty_pg_url, rules, clock)
    add_verification_code(empty_pg_url)
    async with PostgresStore(empty_pg_url) as store:
        await add_account(store, "maria", "a console password", NOW)

    counts = row_counts(empty_pg_url)
    assert all(counts[table] > 0 for table in ALL_TABLES), counts
    before = table_snapshot(empty_pg_url)

    with psycopg.connect(empty_pg_url, autocommit=True) as api:
        api.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        assert api.execute("SELECT current_user").fetchone() == (role,)
        for table in sorted(ALL_TABLES):
            ident = sql.Identifier(table)
            # The grants are real: only row-level security stands in the way.
            assert api.execute(
                "SELECT has_table_privilege(%s, 'SELECT, INSERT, UPDATE, DELETE')", (table,)
            ).fetchone() == (True,), table
            assert api.execute(sql.SQL("SELECT * FROM {}").format(ident)).fetchall() == [], table

            column, value = OVERWRITE[table]
            update = sql.SQL("UPDATE {} SET {} = %s").format(ident, sql.Identifier(column))
            assert api.execute(update, (value,)).rowcount == 0, table
            assert api.execute(sql.SQL("DELETE FROM {}").format(ident)).rowcount == 0, table

            row = NEW_ROWS[table]
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                ident,
                sql.SQL(", ").join(map(sql.Identifier, row)),
                sql.SQL(", ").join(sql.Placeholder() * len(row)),
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                api.execute(insert, list(row.values()))

    assert table_snapshot(empty_pg_url) == before
    with psycopg.connect(empty_pg_url) as owner:
        assert owner.execute(
            "SELECT status, notes FROM appointments WHERE id = %s", (appointment_id,)
        ).fetchone() == ("confirmed", "knee surgery follow-up")
        assert owner.execute("SELECT phone FROM users").fetchall() == [("+14155550123",)]


async def test_the_migration_takes_supabase_api_roles_grants_away(
    empty_pg_url: str, roles: Roles
) -> None:
    """0004 revokes what Supabase's default privileges gave `anon` and `authenticated` on the
    tables before it (TRUNCATE among them, which row-level security does not cover). Here the
    migration's own text runs with a throwaway role named in place of those two."""
    role = roles.create("anon")
    roles.grant_supabase_defaults(empty_pg_url, role)
    migrate_up_to(empty_pg_url, PRIVATE_BY_DEFAULT - 1)

    def privileges() -> list[tuple[str, bool]]:
        with psycopg.connect(empty_pg_url) as conn:
            return conn.execute(
                "SELECT c.relname, has_table_privilege(%s, c.oid,"
                " 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
                " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
                " AND c.relkind IN ('r', 'p', 'S') ORDER BY 1",
                (role,),
            ).fetchall()

    assert {name for name, _ in privileges()} == VOICEBOOK_TABLES
    assert all(held for _, held in privileges())
    migrate_up_to(
        empty_pg_url,
        PRIVATE_BY_DEFAULT,
        replace={"ARRAY['anon', 'authenticated']": f"ARRAY['{role}']"},
    )
    assert privileges() == [(name, False) for name in sorted(VOICEBOOK_TABLES)]


async def test_the_migration_runs_where_supabase_roles_do_not_exist(empty_pg_url: str) -> None:
    with psycopg.connect(ADMIN_URL) as admin:
        missing = admin.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('anon', 'authenticated')"
        ).fetchone()
    if missing != (0,):
        pytest.skip("this cluster has Supabase's roles; plain Postgres is what is tested here")
    assert PRIVATE_BY_DEFAULT in await migrate(empty_pg_url)


# --- row-level security everywhere; what Supabase's linter checks ---------------------------------


def test_every_table_voicebook_creates_has_row_level_security(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            )
        }
        policies = conn.execute("SELECT count(*) FROM pg_policy").fetchone()
    assert tables >= VOICEBOOK_TABLES
    assert tables_without_rls(pg_url) == []
    assert policies == (0,)  # nobody but the owner gets in


@pytest.mark.parametrize("how", ["voicebook db migrate", "supabase_schema.sql"])
async def test_supabase_linter_finds_nothing_in_public(how: str, empty_pg_url: str) -> None:
    if how == "supabase_schema.sql":
        apply_supabase_schema(empty_pg_url)
    else:
        await migrate(empty_pg_url)
    assert lint_findings(empty_pg_url) == []
    assert extension_schema(empty_pg_url) == "extensions"


async def test_btree_gist_installed_elsewhere_stays_there(
    empty_pg_url: str, rules: AvailabilityRules, clock: object
) -> None:
    with psycopg.connect(empty_pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tools")
        conn.execute("CREATE EXTENSION btree_gist SCHEMA tools")
    await migrate(empty_pg_url)
    assert extension_schema(empty_pg_url) == "tools"
    with psycopg.connect(empty_pg_url) as conn:
        created = conn.execute("SELECT to_regnamespace('extensions')").fetchone()
    assert created == (None,)
    assert_database_refuses_overlap(
        empty_pg_url, await book_through_voicebook(empty_pg_url, rules, clock)
    )


# --- an existing install --------------------------------------------------------------------------


async def test_an_install_from_before_keeps_working_after_the_migration(
    empty_pg_url: str, rules: AvailabilityRules, clock: object
) -> None:
    migrate_up_to(empty_pg_url, PRIVATE_BY_DEFAULT - 1)
    assert extension_schema(empty_pg_url) == "public"
    first = book_as_before(empty_pg_url)

    applied = await migrate(empty_pg_url)
    assert applied[0] == PRIVATE_BY_DEFAULT
    assert extension_schema(empty_pg_url) == "extensions"
    assert tables_without_rls(empty_pg_url) == []
    assert lint_findings(empty_pg_url) == []

    async with PostgresStore(empty_pg_url) as store:  # opens: nothing pending
        service = service_on(store, rules, clock)
        session = await service.start_session()
        await call(service, "identify_user", session.id, phone="212 555 0199", name="Bo")
        second = await call(service, "book_appointment", session.id, start=TEN_AM)
        assert second.appointment.status == "confirmed"
        with pytest.raises(DomainError) as taken:
            await service.run_tool(
                "book_appointment", {"session_id": session.id, "start": NINE_AM}, key()
            )
        assert taken.value.code == "slot_taken"

    assert_database_refuses_overlap(empty_pg_url, first)
    with psycopg.connect(empty_pg_url) as conn:
        statuses = conn.execute("SELECT id, status FROM appointments ORDER BY starts_at").fetchall()
    assert statuses == [(first, "confirmed"), (second.appointment.id, "confirmed")]
