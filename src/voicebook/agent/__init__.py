"""The voice agent: prompt, the eight tools over the SDK, providers, the LiveKit worker and the
text mode that `voicebook call --text` and `voicebook eval` use.

Everything here but `install_hint`/`require_agent_extra` needs the `agent` extra
(livekit-agents and its plugins); the CLI checks for it before importing any other module.
"""

from __future__ import annotations

import importlib.util

INSTALL_COMMAND = 'pip install "voicebook[agent]"'


def agent_extra_missing() -> list[str]:
    """The distributions of the `agent` extra that are not installed (empty when all are)."""
    modules = {
        "livekit-agents": "livekit.agents",
        "livekit-plugins-openai": "livekit.plugins.openai",
        "livekit-plugins-deepgram": "livekit.plugins.deepgram",
        "livekit-plugins-cartesia": "livekit.plugins.cartesia",
        "livekit-plugins-bey": "livekit.plugins.bey",
        "pyyaml": "yaml",
    }
    missing = []
    for distribution, module in modules.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(distribution)
    return missing


def install_hint(missing: list[str]) -> str:
    return (
        f"The voice agent needs the agent extra ({', '.join(missing)} not installed). "
        f"Install it with: {INSTALL_COMMAND}"
    )
