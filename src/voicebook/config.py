"""All configuration in one place: one `Settings`, read from the environment and `.env`.

Our own options carry the `VOICEBOOK_` prefix; the names users already have in their `.env` for
LiveKit, Supabase and the providers keep their established spelling (DESIGN §6). Every field's
description is the documentation `.env.example` and the README repeat.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import platformdirs
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from voicebook.business_file import (
    BusinessInfo,
    FaqConfig,
    ResourceConfig,
    ServiceConfig,
    check_references,
    locate,
    to_business,
)
from voicebook.config_files import ENV_FILE, business_file_path
from voicebook.scheduling.availability import AvailabilityRules
from voicebook.scheduling.business import Business, single_calendar
from voicebook.scheduling.cost import Prices
from voicebook.scheduling.hours import HOURS_EXAMPLE, parse_closed_dates, parse_hours
from voicebook.scheduling.identity import VerificationPolicy

SUPABASE_CONNECTION_HINT = (
    "SUPABASE_URL/SUPABASE_KEY reach Supabase's REST API, which cannot give voicebook the "
    "transactions and constraints it needs. Set VOICEBOOK_DATABASE_URL to the Postgres "
    "connection string instead: in the Supabase dashboard open your project, click 'Connect' "
    "(top bar), and copy the URI under 'Transaction pooler' (port 6543) or 'Session pooler' / "
    "'Direct connection' (port 5432); replace [YOUR-PASSWORD] with the database password "
    "from Project Settings → Database."
)


def _plain(name: str) -> Any:
    """A field read from an established, unprefixed variable name (e.g. LIVEKIT_URL)."""
    return Field(default=None, validation_alias=AliasChoices(name))


class ConfigError(Exception):
    """Configuration that cannot work; the message names each variable and what is wrong."""


class Settings(BaseSettings):
    """Every setting voicebook reads; keyword arguments override the environment."""

    model_config = SettingsConfigDict(
        env_prefix="VOICEBOOK_",
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # `VAR=` (in the environment or .env) is the same as leaving VAR out: the template's blanks.
        env_ignore_empty=True,
    )

    # --- storage and fan-out -------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path.db (default: a file in the user data dir) or postgresql://…",
    )
    database_prepared_statements: bool | None = Field(
        default=None,
        description="Use server-side prepared statements on Postgres. Default: on, except through "
        "a transaction pooler (port 6543 or a *.pooler.supabase.com host), where they must be off.",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200, description="Postgres pool size.")
    database_connect_timeout_s: float = Field(
        default=5,
        ge=1,
        le=120,
        description="Seconds to wait for a Postgres connection: to connect (libpq "
        "connect_timeout), or for a free one from the pool.",
    )
    database_statement_timeout_s: float = Field(
        default=5,
        gt=0,
        le=3600,
        description="Longest one SQL statement may run on Postgres, lock waits included "
        "(statement_timeout, set per transaction, so it holds through a transaction pooler).",
    )
    database_transaction_timeout_s: float = Field(
        default=8,
        gt=0,
        le=3600,
        description="Deadline of one whole Postgres transaction, waiting for a connection "
        "included: past it the request is answered 503 store_unavailable and the connection is "
        "dropped. Postgres ends a transaction left idle this long. Keep it above the statement "
        "timeout.",
    )
    redis_url: str | None = Field(default=None, description="redis://… to fan events out.")
    redis_channel_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Prefix of the Redis pub/sub channels that carry live events (and of the "
        "shared rate-limit keys). Default: one "
        "derived from the database, so deployments sharing a Redis never see each other's "
        "events (pub/sub ignores db numbers); set it when workers reach one database by "
        "different URLs.",
    )

    # --- HTTP ----------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        default=None, description="Service credential the agent and SDK send as a Bearer token."
    )
    console_password: SecretStr | None = Field(
        default=None,
        description="Operator password for the console at / (the service key also signs in). "
        "With neither set the console is open, as the API is (loopback only).",
    )
    console_session_hours: float = Field(
        default=12,
        gt=0,
        le=24 * 30,
        description="Hours an operator's console sign-in lasts before the password is asked again.",
    )
    console_try_conversations: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Try-it conversations (the console's text chat with the receptionist) one "
        "server process holds at once; more are refused until one ends.",
    )
    console_try_idle_s: float = Field(
        default=300,
        gt=0,
        le=3600,
        description="Seconds a Try-it conversation waits for the operator's next line before it "
        "is ended (and summarised).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated browser origins allowed by CORS."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or CIDR ranges of the load balancers or proxies "
        "whose X-Forwarded-For / X-Forwarded-Proto are believed (default: none, so the client "
        "address is the connection's and cannot be forged).",
    )
    header_timeout_s: float = Field(
        default=10,
        gt=0,
        le=300,
        description="Seconds a client has to send a request's headers (from connecting, or from "
        "the request's first byte) before its connection is dropped.",
    )
    body_timeout_s: float = Field(
        default=20,
        gt=0,
        le=600,
        description="Seconds a client has to send a request's body after its headers before its "
        "connection is dropped.",
    )
    keepalive_timeout_s: int = Field(
        default=5,
        ge=1,
        le=300,
        description="Seconds an idle keep-alive connection stays open between requests.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections and requests per worker beyond which new requests get 503 "
        "(uvicorn's limit_concurrency).",
    )

    # --- scheduling rules ----------------------------------------------------------------------
    default_region: str = Field(
        default="US", description="Region for phone numbers said without a country code."
    )
    timezone: str = Field(default="America/New_York", description="IANA zone of the business.")
    hours: str = Field(default="mon-fri 09:00-17:00", description=f"e.g. '{HOURS_EXAMPLE}'.")
    slot_minutes: int = Field(default=30, ge=5, le=24 * 60, description="Appointment length.")
    buffer_minutes: int = Field(default=0, ge=0, le=24 * 60, description="Gap after each slot.")
    min_notice_minutes: int = Field(
        default=60, ge=0, description="How soon the earliest bookable slot may start."
    )
    horizon_days: int = Field(default=30, ge=1, le=730, description="How far ahead to book.")
    closed_dates: str = Field(default="", description="Comma-separated ISO dates, e.g. holidays.")
    resource: str = Field(default="default", description="Name of the calendar being booked.")

    # --- the business file (voicebook.toml); see business_file.py -------------------------------
    business_file: Path | None = Field(
        default=None,
        description="The business file (default: voicebook.toml in the working directory, if "
        "there); the environment overrides any of its settings.",
    )
    business: Annotated[BusinessInfo | None, NoDecode] = Field(
        default=None, description="The business's name, phone, address, website and greeting."
    )
    services: Annotated[list[ServiceConfig], NoDecode] = Field(
        default_factory=list, description="Services: id, name, minutes, buffers, price."
    )
    staff: Annotated[list[ResourceConfig], NoDecode] = Field(
        default_factory=list, description="Staff: id, name, services, weekly hours, closed dates."
    )
    rooms: Annotated[list[ResourceConfig], NoDecode] = Field(
        default_factory=list, description="Rooms a service also needs (same fields as staff)."
    )
    faq: Annotated[list[FaqConfig], NoDecode] = Field(
        default_factory=list, description="Questions and answers the receptionist may use."
    )

    # --- server behaviour ------------------------------------------------------------------------
    session_idle_minutes: float = Field(
        default=15,
        gt=0,
        description="End (and summarise) a session after this long without activity.",
    )
    token_ttl_minutes: int = Field(
        default=60,
        ge=1,
        le=24 * 60,
        description="Lifetime of a LiveKit token for the browser; never longer than "
        "VOICEBOOK_SESSION_IDLE_MINUTES, after which an idle session ends.",
    )
    token_mints_per_session: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="LiveKit tokens one session may have (POST /livekit/token); more get 429 "
        "too_many_tokens.",
    )
    retention_days: int = Field(
        default=90,
        ge=1,
        le=36_500,
        description="Days after which ended sessions, their events and transcripts are deleted "
        "(appointments stay).",
    )
    # --- caller verification (DESIGN §4 identity levels) -----------------------------------------
    verification: Literal["console", "webhook", "twilio", "off"] = Field(
        default="console",
        description="How one-time codes reach a caller's phone: console (printed in the server "
        "log; loopback only), webhook (signed JSON to your SMS system), twilio (Twilio Verify), "
        "or off (a number said is believed: not for real callers).",
    )
    verification_webhook_url: str | None = Field(
        default=None, description="Where the webhook sender POSTs {phone, code, expires_at}."
    )
    verification_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs each webhook (X-Voicebook-Signature: sha256=HMAC of "
        "'<X-Voicebook-Timestamp>.<body>').",
    )
    twilio_account_sid: str | None = _plain("TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = _plain("TWILIO_AUTH_TOKEN")
    twilio_verify_service_sid: str | None = Field(
        default=None, description="The Twilio Verify service (VA…) that sends and checks codes."
    )
    twilio_verify_url: str = Field(
        default="https://verify.twilio.com",
        description="Twilio Verify's API base URL (change only for a test stand-in).",
    )
    verify_code_minutes: float = Field(
        default=10, gt=0, le=60, description="How long a one-time code stays valid."
    )
    verify_max_attempts: int = Field(
        default=5, ge=1, le=10, description="Wrong tries before a code stops working."
    )
    verify_sends_per_hour: int = Field(
        default=3, ge=1, le=20, description="Codes one phone number may be sent per hour."
    )

    session_rate_limit: int = Field(
        default=20, ge=1, description="Sessions one client address may start per minute."
    )
    rate_limit_per_address: str = Field(
        default="300/minute",
        description="Browser requests (every route the page calls, WebSocket handshakes too) "
        "one client address may make, in `limits` notation: e.g. 300/minute or "
        "10/second;300/minute.",
    )
    rate_limit_per_session: str = Field(
        default="120/minute",
        description="Browser requests that may name one session, in the same notation.",
    )
    max_body_bytes: int = Field(
        default=65_536, ge=1024, description="Largest request body accepted, in bytes."
    )
    websockets_per_session: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="WebSockets one session may have open on one worker; more are closed with "
        "code 4429.",
    )
    websocket_linger_s: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="Seconds a session's WebSocket stays open after `session_closed` for the "
        "client to close it (the page does, and shows the call as ended); then code 1000.",
    )

    llm_model: str | None = Field(
        default=None,
        description="The agent's model at OPENAI_API_BASE (default: OPENROUTER_MODEL, "
        "else gpt-4o-mini).",
    )

    # --- prices for the cost in summaries (USD; estimates, set your own) -------------------------
    price_llm_input_per_1m: float = Field(
        default=0.15, ge=0, description="LLM input tokens, per million (any model not listed)."
    )
    price_llm_output_per_1m: float = Field(
        default=0.60, ge=0, description="LLM output tokens, per million (any model not listed)."
    )
    price_llm_cached_per_1m: float = Field(
        default=0.075,
        ge=0,
        description="LLM input tokens served from the provider's prompt cache, per million "
        "(any model not listed).",
    )
    price_llm_models: Annotated[
        dict[str, tuple[float, float] | tuple[float, float, float]], NoDecode
    ] = Field(
        default_factory=dict,
        description="Per-model [input, output] or [input, output, cached input] prices per "
        'million tokens, as JSON: {"openai/gpt-4o-mini": [0.15, 0.6, 0.075]}; a model '
        "without a cached price has its cached tokens priced as input.",
    )
    price_stt_per_minute: float = Field(default=0.0077, ge=0, description="Speech-to-text.")
    price_tts_per_1k_chars: float = Field(default=0.05, ge=0, description="Text-to-speech.")
    price_avatar_per_minute: float = Field(default=0.175, ge=0, description="Avatar video.")

    # --- established names (LiveKit, Supabase, providers, frontend) ----------------------------
    livekit_url: str | None = _plain("LIVEKIT_URL")
    livekit_api_key: str | None = _plain("LIVEKIT_API_KEY")
    livekit_api_secret: SecretStr | None = _plain("LIVEKIT_API_SECRET")
    livekit_agent_name: str = Field(
        default="voicebook-agent", validation_alias=AliasChoices("LIVEKIT_AGENT_NAME")
    )
    supabase_url: str | None = _plain("SUPABASE_URL")
    supabase_key: SecretStr | None = _plain("SUPABASE_KEY")
    openrouter_api_key: SecretStr | None = _plain("OPENROUTER_API_KEY")
    openrouter_model: str | None = _plain("OPENROUTER_MODEL")
    openai_api_base: str | None = _plain("OPENAI_API_BASE")
    openai_api_key: SecretStr | None = _plain("OPENAI_API_KEY")
    deepgram_api_key: SecretStr | None = _plain("DEEPGRAM_API_KEY")
    cartesia_api_key: SecretStr | None = _plain("CARTESIA_API_KEY")
    cartesia_voice_id: str | None = _plain("CARTESIA_VOICE_ID")
    bey_api_key: SecretStr | None = _plain("BEY_API_KEY")
    bey_avatar_id: str | None = _plain("BEY_AVATAR_ID")
    bey_enabled: bool = Field(default=False, validation_alias=AliasChoices("BEY_ENABLED"))
    agent_greeting: str | None = _plain("AGENT_GREETING")
    http_base_url: str | None = _plain("HTTP_BASE_URL")
    ws_base_url: str | None = _plain("WS_BASE_URL")
    backend_base_url: str | None = _plain("BACKEND_BASE_URL")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """A blank or whitespace-only value is no value, however it arrives (environment, .env,
        keyword argument): the setting takes its default, so every secret is then None."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(text, str) and not text.strip() and field and not field.is_required():
            return field.get_default(call_default_factory=True)
        return value

    @field_validator("price_llm_models", mode="before")
    @classmethod
    def _decode_model_prices(cls, value: Any) -> Any:
        # Decoded here rather than by pydantic-settings, so that malformed JSON is reported like
        # any other bad value (naming the variable) and a blank one is the default.
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'not valid JSON ({exc.msg}); expected e.g. {{"openai/gpt-4o-mini": [0.15, 0.6]}}'
            ) from None

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        """Each entry as a network (`10.1.2.3/8` → `10.0.0.0/8`), the form uvicorn expects."""
        networks = []
        for entry in value:
            try:
                networks.append(entry if entry == "*" else str(ipaddress.ip_network(entry, False)))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an address or CIDR range (expected e.g. "
                    "'10.0.0.0/8,192.168.1.5', or '*' for any)"
                ) from None
        return networks

    @field_validator("rate_limit_per_address", "rate_limit_per_session")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate (expected e.g. '300/minute' or '10/second;300/minute')"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (expected e.g. 'America/New_York')"
            ) from None
        return value

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    @field_validator("closed_dates", mode="before")
    @classmethod
    def _check_closed(cls, value: Any) -> Any:
        if isinstance(value, list):  # the business file may list them
            value = ",".join(str(item) for item in value)
        if isinstance(value, str):
            parse_closed_dates(value)
        return value

    @field_validator("business", "services", "staff", "rooms", "faq", mode="before")
    @classmethod
    def _decode_tables(cls, value: Any, info: ValidationInfo) -> Any:
        # From the business file these arrive as tables; from the environment as JSON, decoded
        # here so that malformed JSON names the variable like any other bad value.
        if not isinstance(value, str):
            return value
        if not value.strip():
            field = cls.model_fields[info.field_name or ""]
            return field.get_default(call_default_factory=True)
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg})") from None

    @model_validator(mode="after")
    def _check_business(self) -> Settings:
        check_references(self.services, self.staff, self.rooms)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then `.env`, then the business file."""
        sources = [init_settings, env_settings, dotenv_settings]
        path = business_file_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return (*sources, file_secret_settings)

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a two-letter region code (expected e.g. 'US')")
        return region

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("sqlite", "postgres", "postgresql"):
            raise ValueError(
                f"unsupported scheme {scheme!r}; use sqlite:///path/to/file.db or "
                "postgresql://user:password@host:5432/dbname"
            )
        return value.strip()

    @cached_property
    def prices(self) -> Prices:
        """The price table for the cost in summaries."""
        return Prices(
            llm_input_per_1m=self.price_llm_input_per_1m,
            llm_output_per_1m=self.price_llm_output_per_1m,
            llm_cached_per_1m=self.price_llm_cached_per_1m,
            llm_models=self.price_llm_models,
            stt_per_minute=self.price_stt_per_minute,
            tts_per_1k_chars=self.price_tts_per_1k_chars,
            avatar_per_minute=self.price_avatar_per_minute,
        )

    @cached_property
    def rules(self) -> AvailabilityRules:
        """The availability rules these settings describe."""
        return AvailabilityRules(
            zone=ZoneInfo(self.timezone),
            weekly=parse_hours(self.hours),
            slot_minutes=self.slot_minutes,
            buffer_minutes=self.buffer_minutes,
            min_notice_minutes=self.min_notice_minutes,
            horizon_days=self.horizon_days,
            closed_dates=parse_closed_dates(self.closed_dates),
        )

    def service_key(self) -> str | None:
        """The service key, or None when there is none (a blank key is no key): the one test of
        whether auth is on, for `voicebook serve`'s refusal and banner and the server's auth."""
        key = self.api_key.get_secret_value().strip() if self.api_key is not None else ""
        return key or None

    def console_password_value(self) -> str | None:
        """The shared console password, or None when there is none (a blank one is none)."""
        value = self.console_password
        return (value.get_secret_value().strip() if value is not None else "") or None

    def console_secrets(self) -> list[str]:
        """What signs an operator in to the console: the console password and the service key,
        each only when it is not blank. Empty: the console is open, as the API is."""
        return [s for s in (self.console_password_value(), self.service_key()) if s]

    @cached_property
    def business_model(self) -> Business:
        """The business the receptionist books for: the business file's services, staff and
        rooms, or one service on one calendar from the environment settings."""
        if not self.services:
            return single_calendar(self.rules, self.resource)
        return to_business(
            self.rules, self.business, self.services, self.staff, self.rooms, self.faq
        )

    @cached_property
    def verification_policy(self) -> VerificationPolicy:
        """How codes behave, from the VOICEBOOK_VERIFY_* settings."""
        return VerificationPolicy(
            enabled=self.verification != "off",
            code_minutes=self.verify_code_minutes,
            max_attempts=self.verify_max_attempts,
            sends_per_hour=self.verify_sends_per_hour,
        )

    def resolved_database_url(self) -> str:
        """The database to use; the embedded SQLite file when none is configured.

        Raises ConfigError when only Supabase's REST credentials are set, because silently falling
        back to a local file would hide the user's real data.
        """
        if self.database_url:
            return self.database_url
        if self.supabase_url or self.supabase_key:
            raise ConfigError(SUPABASE_CONNECTION_HINT)
        return "sqlite:///" + str(default_sqlite_path())


def default_sqlite_path() -> Path:
    """Where the embedded database lives when no URL is configured."""
    return Path(platformdirs.user_data_dir("voicebook", appauthor=False)) / "voicebook.db"


def redact_url(url: str) -> str:
    """The URL with its password replaced (in the user part or a `password=` query parameter,
    which libpq also accepts), safe to print or log."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if parts.password is None and not any(k.lower() == "password" for k, _ in query):
        return url  # untouched (a round trip would change e.g. sqlite:////abs/path)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    query = [(k, "***" if k.lower() == "password" else v) for k, v in query]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def variable_name(field_name: str) -> str:
    """The environment variable a Settings field is read from."""
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"VOICEBOOK_{field_name.upper()}"


def _where(loc: tuple[Any, ...]) -> str:
    """Where a bad value came from: its variable, or `file:line` in the business file."""
    field = str(loc[0]) if loc else ""
    name = variable_name(field) if field in Settings.model_fields else field or "settings"
    path = business_file_path()
    if name in os.environ or path is None or not path.is_file():
        return name
    line = locate(path, loc)
    if line is None:
        return name
    dotted = ".".join(str(part) for part in loc)
    return f"{path}:{line}: {dotted}"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation errors into one ConfigError naming every bad variable
    (or the business file's line and field)."""
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{business_file_path()}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{_where(tuple(error['loc']))}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
