"""What a call cost: the agent's reported usage priced by the configured table. Pure.

Usage is reported as running totals for the whole session (what livekit-agents' usage collector
gives), so a repeated or late report can only raise a figure, never count it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

USAGE_FIELDS = (
    "llm_input_tokens",
    "llm_cached_tokens",
    "llm_output_tokens",
    "stt_seconds",
    "tts_characters",
    "avatar_seconds",
)


@dataclass(frozen=True)
class Prices:
    """USD prices; `llm_models` overrides the default LLM prices per model name with
    `(input, output)` or `(input, output, cached input)`.

    A listed model without a cached price has its cached tokens priced at its own input price:
    the default cached price belongs to the default model, and guessing another model's
    discount would under-state its cost."""

    llm_input_per_1m: float = 0.0
    llm_output_per_1m: float = 0.0
    llm_cached_per_1m: float = 0.0
    llm_models: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    stt_per_minute: float = 0.0
    tts_per_1k_chars: float = 0.0
    avatar_per_minute: float = 0.0


def merge_usage(stored: Mapping[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
    """Running totals: each figure is the larger of the stored and the reported one."""
    merged = dict(stored)
    for name in USAGE_FIELDS:
        if reported.get(name) is not None:
            merged[name] = max(float(stored.get(name) or 0), float(reported[name]))
    if reported.get("llm_model"):
        merged["llm_model"] = reported["llm_model"]
    return merged


def llm_prices(model: str | None, prices: Prices) -> tuple[float, float, float]:
    """(input, output, cached input) per million tokens for `model`."""
    listed = prices.llm_models.get(model or "")
    if listed is None:
        return prices.llm_input_per_1m, prices.llm_output_per_1m, prices.llm_cached_per_1m
    per_in, per_out = listed[0], listed[1]
    return per_in, per_out, listed[2] if len(listed) > 2 else per_in


def price(usage: Mapping[str, Any], prices: Prices) -> dict[str, Any]:
    """Itemised cost in USD, rounded to 1/10,000 of a dollar."""
    model = usage.get("llm_model")
    per_in, per_out, per_cached = llm_prices(model, prices)
    figures = {name: float(usage.get(name) or 0) for name in USAGE_FIELDS}
    # Cached tokens are part of the input tokens (as providers count them), never more.
    cached = min(figures["llm_cached_tokens"], figures["llm_input_tokens"])
    items = {
        "llm": (figures["llm_input_tokens"] - cached) / 1e6 * per_in
        + cached / 1e6 * per_cached
        + figures["llm_output_tokens"] / 1e6 * per_out,
        "stt": figures["stt_seconds"] / 60 * prices.stt_per_minute,
        "tts": figures["tts_characters"] / 1000 * prices.tts_per_1k_chars,
        "avatar": figures["avatar_seconds"] / 60 * prices.avatar_per_minute,
    }
    return {
        "currency": "USD",
        "total": round(sum(items.values()), 4),
        "items": {name: round(amount, 4) for name, amount in items.items()},
        "usage": {**figures, "llm_model": model},
    }
