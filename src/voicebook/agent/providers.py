"""Providers from settings: the LLM, Deepgram STT, Cartesia TTS, Beyond Presence, VAD and turn
detection, and the two sessions made of them (voice and text).

Why: every key is checked before anything connects, and a missing one is reported together
with all the others in one message (`missing_variables`), not as the first plugin's exception.
The text session builds no STT, TTS or VAD at all, so `voicebook call --text` needs neither
audio libraries nor their keys. VAD and turn detection run on models shipped inside
livekit-agents' wheels (livekit-local-inference): nothing is downloaded at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from voicebook.config import ConfigError, Settings

if TYPE_CHECKING:
    from livekit.agents import AgentSession
    from livekit.agents.llm import LLM

DEFAULT_OPENROUTER_MODEL = "openai/gpt-4o-mini"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEEPGRAM_MODEL = "nova-3"
DEEPGRAM_OPTIONS: dict[str, Any] = {"numerals": True, "smart_format": True}
"""Digits for spoken numbers: "four one five, five five five..." reaches the model as
"415-555-..." (numerals), grouped like a phone number (smart_format), so `identify_user` gets
the number the caller said rather than words the model must convert. Deepgram's `no_delay`
(the plugin's default) keeps smart formatting from holding results back."""
MAX_TOOL_STEPS = 5
"""livekit-agents' `max_tool_steps`: a turn may make this many tool rounds plus one before the
model must answer without tools. A caller who says "I'm Ada, 415 555 0101, book me the first
slot, then tell me what I have and what else is free" needs five; the default (3) cuts that
turn short."""
LLM_VARIABLES = "OPENROUTER_API_KEY (or OPENAI_API_BASE with OPENAI_API_KEY)"


def secret_value(value: SecretStr | None) -> str | None:
    """The plain text of a secret setting (None when it is not set)."""
    return value.get_secret_value() if value is not None else None


def missing_variables(settings: Settings, *, voice: bool) -> list[str]:
    """Every variable the agent still needs: for the LLM, and for a voice worker also LiveKit,
    Deepgram, Cartesia (and Beyond Presence when BEY_ENABLED)."""
    missing = []
    if not (settings.openrouter_api_key or settings.openai_api_base or settings.openai_api_key):
        missing.append(LLM_VARIABLES)
    if voice:
        required = {
            "LIVEKIT_URL": settings.livekit_url,
            "LIVEKIT_API_KEY": settings.livekit_api_key,
            "LIVEKIT_API_SECRET": settings.livekit_api_secret,
            "DEEPGRAM_API_KEY": settings.deepgram_api_key,
            "CARTESIA_API_KEY": settings.cartesia_api_key,
        }
        if settings.bey_enabled:
            required["BEY_API_KEY"] = settings.bey_api_key
        missing += [name for name, value in required.items() if not value]
    return missing


def check_settings(settings: Settings, *, voice: bool) -> None:
    """Raise `ConfigError` naming every missing variable (before anything connects)."""
    missing = missing_variables(settings, voice=voice)
    if missing:
        mode = "The voice agent" if voice else "The text agent"
        raise ConfigError(
            f"{mode} is missing settings: {', '.join(missing)}. "
            "Set them in the environment or in .env."
        )


def llm_model_name(settings: Settings) -> str:
    if settings.openrouter_api_key:
        return settings.openrouter_model or DEFAULT_OPENROUTER_MODEL
    return settings.llm_model or settings.openrouter_model or DEFAULT_OPENAI_MODEL


def build_llm(settings: Settings) -> LLM:
    """OpenRouter when OPENROUTER_API_KEY is set, else the OpenAI-compatible OPENAI_API_BASE
    (a local vLLM, llama.cpp or Ollama; they need no real key), else OpenAI itself."""
    from livekit.plugins import openai

    model = llm_model_name(settings)
    if settings.openrouter_api_key:
        return openai.LLM.with_openrouter(
            model=model, api_key=secret_value(settings.openrouter_api_key), app_name="voicebook"
        )
    return openai.LLM(
        model=model,
        base_url=settings.openai_api_base or "https://api.openai.com/v1",
        api_key=secret_value(settings.openai_api_key) or "not-needed",
    )


def build_voice_session(settings: Settings) -> AgentSession:
    """The phone session: Deepgram → LLM → Cartesia, local VAD and end-of-turn model."""
    from livekit.agents import AgentSession, inference
    from livekit.plugins import cartesia, deepgram

    check_settings(settings, voice=True)
    tts_options: dict[str, Any] = {"api_key": secret_value(settings.cartesia_api_key)}
    if settings.cartesia_voice_id:
        tts_options["voice"] = settings.cartesia_voice_id
    return AgentSession(
        stt=deepgram.STT(
            model=DEEPGRAM_MODEL,
            api_key=secret_value(settings.deepgram_api_key),
            **DEEPGRAM_OPTIONS,
        ),
        llm=build_llm(settings),
        tts=cartesia.TTS(**tts_options),
        vad=inference.VAD(),
        turn_handling={"turn_detection": inference.TurnDetector(version="v1-mini")},
        max_tool_steps=MAX_TOOL_STEPS,
    )


def build_text_session(settings: Settings) -> AgentSession:
    """The terminal session: the LLM alone (no STT, TTS, VAD or turn detector is built)."""
    from livekit.agents import AgentSession

    check_settings(settings, voice=False)
    return AgentSession(
        llm=build_llm(settings),
        vad=None,
        turn_handling={"turn_detection": None},
        max_tool_steps=MAX_TOOL_STEPS,
    )


def build_avatar(settings: Settings) -> Any:
    """The Beyond Presence avatar session (started by the worker before the agent session)."""
    from livekit.plugins import bey

    options: dict[str, Any] = {"api_key": secret_value(settings.bey_api_key)}
    if settings.bey_avatar_id:
        options["avatar_id"] = settings.bey_avatar_id
    return bey.AvatarSession(**options)
