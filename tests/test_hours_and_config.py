"""Opening-hours parsing (scheduling/hours.py) and configuration (config.py)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from voicebook.config import (
    ConfigError,
    Settings,
    load_settings,
    redact_url,
)
from voicebook.scheduling.hours import (
    TimeRange,
    format_hours,
    parse_closed_dates,
    parse_hours,
)

EXAMPLE = "mon-fri 09:00-17:00, sat 10:00-14:00"

# --- parse_hours -------------------------------------------------------------------------------


def hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def tr(start: str, end: str) -> TimeRange:
    return TimeRange(hm(start), hm(end))


def test_parse_the_documented_example() -> None:
    weekday = (TimeRange(540, 1020),)  # 09:00 = 540, 17:00 = 1020
    assert parse_hours(EXAMPLE) == {
        0: weekday,
        1: weekday,
        2: weekday,
        3: weekday,
        4: weekday,
        5: (TimeRange(600, 840),),  # 10:00-14:00
    }


def test_several_ranges_on_one_day() -> None:
    assert parse_hours("mon 09:00-12:00 13:00-17:00") == {
        0: (tr("09:00", "12:00"), tr("13:00", "17:00"))
    }


def test_24_00_is_allowed_as_an_end() -> None:
    assert parse_hours("mon-sun 00:00-24:00") == {day: (TimeRange(0, 1440),) for day in range(7)}
    assert parse_hours("fri 22:00-24:00") == {4: (TimeRange(1320, 1440),)}


def test_repeated_days_merge_and_sort() -> None:
    assert parse_hours("mon 13:00-17:00, mon-tue 09:00-12:00") == {
        0: (tr("09:00", "12:00"), tr("13:00", "17:00")),
        1: (tr("09:00", "12:00"),),
    }


def test_touching_ranges_are_not_overlapping() -> None:
    assert parse_hours("wed 09:00-12:00 12:00-13:00") == {
        2: (tr("09:00", "12:00"), tr("12:00", "13:00"))
    }


def test_lenient_spellings() -> None:
    assert parse_hours("Monday-Friday 9:00-17:00") == parse_hours("mon-fri 09:00-17:00")
    assert parse_hours("  sat 10:00-14:00 ,, ") == {5: (tr("10:00", "14:00"),)}
    assert parse_hours("thurs 08:30-09:15") == {3: (tr("08:30", "09:15"),)}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "no opening hours"),
        ("   ", "no opening hours"),
        ("mon", "needs days"),
        ("09:00-17:00", "needs days"),
        ("xyz 09:00-17:00", "unknown day"),
        ("mon-fry 09:00-17:00", "unknown day"),
        ("fri-mon 09:00-17:00", "backwards"),
        ("mon 17:00-09:00", "must end after it starts"),
        ("mon 09:00-09:00", "must end after it starts"),
        ("mon 9am-5pm", "must look like"),
        ("mon 09:00–17:00", "must look like"),  # an en dash
        ("mon 0900-1700", "must look like"),
        ("mon 25:00-26:00", "impossible time"),
        ("mon 09:60-17:00", "impossible time"),
        ("mon 09:00-24:30", "impossible time"),
        ("mon 24:00-24:00", "impossible time"),
        ("mon 09:00-12:00 11:00-13:00", "overlapping"),
        ("mon-fri 09:00-17:00, wed 16:00-18:00", "overlapping"),
        ("mon 09:00-17:00, mon 09:00-17:00", "overlapping"),
    ],
)
def test_bad_hours_are_refused_with_the_expected_form(text: str, names: str) -> None:
    with pytest.raises(ValueError, match="expected a form like") as info:
        parse_hours(text)
    message = str(info.value)
    assert names in message
    assert EXAMPLE in message


def test_overlap_error_names_the_day_and_ranges() -> None:
    with pytest.raises(ValueError, match="overlapping") as info:
        parse_hours("mon-fri 09:00-17:00, wed 16:00-18:00")
    assert "wed" in str(info.value)
    assert "09:00-17:00" in str(info.value)
    assert "16:00-18:00" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "mon 09:00-17:00",
        "mon 09:00-12:00 13:00-17:00, sat 10:00-14:00",
        "tue 00:00-24:00, sun 06:05-07:10",
        "mon-fri 09:00-17:00, sat 10:00-14:00",
        "mon-tue 08:00-12:00, wed 08:00-12:00 13:00-15:00, thu-fri 08:00-12:00",
    ],
)
def test_format_hours_round_trips(text: str) -> None:
    assert format_hours(parse_hours(text)) == text
    assert parse_hours(format_hours(parse_hours(text))) == parse_hours(text)


def test_format_hours_is_canonical() -> None:
    assert format_hours(parse_hours("Monday-Tuesday 9:00-10:30")) == "mon-tue 09:00-10:30"
    assert format_hours(parse_hours("mon 09:00-10:00, wed 09:00-10:00")) == (
        "mon 09:00-10:00, wed 09:00-10:00"  # not consecutive: not a range
    )


def test_parse_closed_dates() -> None:
    assert parse_closed_dates("") == frozenset()
    assert parse_closed_dates("2027-12-25, 2027-01-01,,2027-12-25 ") == frozenset(
        {date(2027, 12, 25), date(2027, 1, 1)}
    )
    with pytest.raises(ValueError, match="'2027-02-30'") as info:
        parse_closed_dates("2027-12-25, 2027-02-30")
    assert "YYYY-MM-DD" in str(info.value)
    with pytest.raises(ValueError, match="'christmas'"):
        parse_closed_dates("christmas")


# --- settings ----------------------------------------------------------------------------------

ESTABLISHED = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_AGENT_NAME",
    "SUPABASE_URL",
    "SUPABASE_KEY",
    "OPENROUTER_API_KEY",
    "OPENROUTER_MODEL",
    "OPENAI_API_BASE",
    "OPENAI_API_KEY",
    "DEEPGRAM_API_KEY",
    "CARTESIA_API_KEY",
    "CARTESIA_VOICE_ID",
    "BEY_API_KEY",
    "BEY_AVATAR_ID",
    "BEY_ENABLED",
    "AGENT_GREETING",
    "HTTP_BASE_URL",
    "WS_BASE_URL",
    "BACKEND_BASE_URL",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment and an empty working directory, so no real .env is read."""
    for name in list(os.environ):
        if name.upper().startswith("VOICEBOOK_") or name.upper() in ESTABLISHED:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.database_url is None
    assert settings.default_region == "US"
    assert settings.timezone == "America/New_York"
    assert settings.livekit_url is None
    assert settings.livekit_agent_name == "voicebook-agent"
    assert settings.bey_enabled is False
    assert settings.cors_origins == []


def test_scheduling_rules_from_the_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("VOICEBOOK_TIMEZONE", "Asia/Kolkata")
    env.setenv("VOICEBOOK_HOURS", "mon 09:00-12:00 13:00-17:00, sat 10:00-14:00")
    env.setenv("VOICEBOOK_SLOT_MINUTES", "45")
    env.setenv("VOICEBOOK_BUFFER_MINUTES", "15")
    env.setenv("VOICEBOOK_MIN_NOTICE_MINUTES", "120")
    env.setenv("VOICEBOOK_HORIZON_DAYS", "14")
    env.setenv("VOICEBOOK_CLOSED_DATES", "2027-12-25,2027-12-26")
    env.setenv("VOICEBOOK_DEFAULT_REGION", " gb ")
    env.setenv("VOICEBOOK_CORS_ORIGINS", "http://localhost:3000, https://app.example.com")
    settings = load_settings()
    rules = settings.rules
    assert rules.zone == ZoneInfo("Asia/Kolkata")
    assert rules.weekly == {
        0: (TimeRange(540, 720), TimeRange(780, 1020)),
        5: (TimeRange(600, 840),),
    }
    assert (rules.slot_minutes, rules.buffer_minutes) == (45, 15)
    assert (rules.min_notice_minutes, rules.horizon_days) == (120, 14)
    assert rules.closed_dates == frozenset({date(2027, 12, 25), date(2027, 12, 26)})
    assert settings.default_region == "GB"
    assert settings.cors_origins == ["http://localhost:3000", "https://app.example.com"]


def test_established_names_are_read_without_prefix(env: pytest.MonkeyPatch) -> None:
    env.setenv("LIVEKIT_URL", "wss://demo.livekit.cloud")
    env.setenv("LIVEKIT_API_KEY", "APIabc")
    env.setenv("LIVEKIT_API_SECRET", "livekit-secret-value")
    env.setenv("LIVEKIT_AGENT_NAME", "front-desk")
    env.setenv("OPENROUTER_MODEL", "openai/gpt-4o-mini")
    env.setenv("DEEPGRAM_API_KEY", "dg-secret-value")
    env.setenv("BEY_ENABLED", "true")
    env.setenv("HTTP_BASE_URL", "http://127.0.0.1:8000")
    settings = load_settings()
    assert settings.livekit_url == "wss://demo.livekit.cloud"
    assert settings.livekit_api_key == "APIabc"
    assert settings.livekit_api_secret is not None
    assert settings.livekit_api_secret.get_secret_value() == "livekit-secret-value"
    assert settings.livekit_agent_name == "front-desk"
    assert settings.openrouter_model == "openai/gpt-4o-mini"
    assert settings.deepgram_api_key is not None
    assert settings.deepgram_api_key.get_secret_value() == "dg-secret-value"
    assert settings.bey_enabled is True
    assert settings.http_base_url == "http://127.0.0.1:8000"
    # Secrets stay hidden when the settings are printed.
    assert "livekit-secret-value" not in repr(settings)
    assert "dg-secret-value" not in repr(settings)


def test_dotenv_in_the_working_directory_is_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "LIVEKIT_URL=wss://from-dotenv.livekit.cloud\nVOICEBOOK_HOURS=sat 10:00-14:00\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.livekit_url == "wss://from-dotenv.livekit.cloud"
    assert settings.rules.weekly == {5: (TimeRange(600, 840),)}


def test_keyword_overrides_win(env: pytest.MonkeyPatch) -> None:
    env.setenv("VOICEBOOK_SLOT_MINUTES", "45")
    assert load_settings(slot_minutes=20).slot_minutes == 20


@pytest.mark.parametrize(
    ("variable", "value", "detail"),
    [
        ("VOICEBOOK_HOURS", "mon-fry 09:00-17:00", "unknown day"),
        ("VOICEBOOK_HOURS", "mon 17:00-09:00", EXAMPLE),
        ("VOICEBOOK_TIMEZONE", "Mars/Olympus_Mons", "IANA"),
        ("VOICEBOOK_TIMEZONE", "EST+5", "IANA"),
        ("VOICEBOOK_DEFAULT_REGION", "USA", "region"),
        ("VOICEBOOK_DEFAULT_REGION", "XX", "region"),
        ("VOICEBOOK_CLOSED_DATES", "2027-12-25, 2027-02-30", "2027-02-30"),
        ("VOICEBOOK_SLOT_MINUTES", "0", ""),
        ("VOICEBOOK_HORIZON_DAYS", "soon", ""),
        ("VOICEBOOK_DATABASE_URL", "mysql://u:p@h/db", "postgresql://"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(
    env: pytest.MonkeyPatch, variable: str, value: str, detail: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert f"{variable}:" in text
    assert detail in text


def test_every_bad_variable_is_named_at_once(env: pytest.MonkeyPatch) -> None:
    env.setenv("VOICEBOOK_HOURS", "never")
    env.setenv("VOICEBOOK_TIMEZONE", "Nowhere/Special")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "VOICEBOOK_HOURS" in str(info.value)
    assert "VOICEBOOK_TIMEZONE" in str(info.value)


def test_bad_established_variable_is_named_as_the_user_wrote_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("BEY_ENABLED", "maybe")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "BEY_ENABLED:" in text
    assert "VOICEBOOK_BEY_ENABLED" not in text


# --- database URL ------------------------------------------------------------------------------


def test_database_url_is_used_as_given(env: pytest.MonkeyPatch) -> None:
    url = "postgresql://postgres:pw@db.example.com:5432/postgres"
    env.setenv("VOICEBOOK_DATABASE_URL", url)
    env.setenv("SUPABASE_URL", "https://abcd.supabase.co")
    assert load_settings().resolved_database_url() == url


def test_default_database_is_a_local_sqlite_file(env: pytest.MonkeyPatch) -> None:
    url = load_settings().resolved_database_url()
    assert url.startswith("sqlite:///")
    assert url.endswith("voicebook.db")


@pytest.mark.parametrize(
    "variables",
    [
        {"SUPABASE_URL": "https://abcd.supabase.co"},
        {"SUPABASE_KEY": "supabase-anon-key-value"},
        {"SUPABASE_URL": "https://abcd.supabase.co", "SUPABASE_KEY": "supabase-anon-key-value"},
    ],
)
def test_supabase_rest_credentials_alone_explain_where_the_connection_string_is(
    env: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    settings = load_settings()
    with pytest.raises(ConfigError) as info:
        settings.resolved_database_url()
    text = str(info.value)
    assert "VOICEBOOK_DATABASE_URL" in text
    assert "Transaction pooler" in text
    assert "Connect" in text
    assert "6543" in text
    assert "supabase-anon-key-value" not in text


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "postgresql://postgres:s3cret@db.abcd.supabase.co:5432/postgres",
            "postgresql://postgres:***@db.abcd.supabase.co:5432/postgres",
        ),
        (
            "postgresql://postgres.abcd:p%40ss%3Aword@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
            "postgresql://postgres.abcd:***@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
        ),
        (
            "postgres://user:hunter2@localhost/app?sslmode=require",
            "postgres://user:***@localhost/app?sslmode=require",
        ),
        ("postgresql://user@localhost/app", "postgresql://user@localhost/app"),
        ("sqlite:////var/lib/voicebook/voicebook.db", "sqlite:////var/lib/voicebook/voicebook.db"),
    ],
)
def test_redact_url_hides_the_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_redact_url_keeps_a_username_that_looks_like_the_password() -> None:
    assert (
        redact_url("postgresql://admin:admin@host:5432/db") == "postgresql://admin:***@host:5432/db"
    )


def test_redact_url_hides_a_password_in_the_query_string() -> None:
    shown = redact_url("postgresql://user@host/db?sslmode=require&password=hunter2")
    assert "hunter2" not in shown
    assert shown == "postgresql://user@host/db?sslmode=require&password=***"
