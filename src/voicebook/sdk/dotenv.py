"""The working directory's `.env`, read the way the server reads it, without pydantic-settings.

The SDK installs alone (httpx, websockets, pydantic), so it cannot use the server's Settings or
python-dotenv (a dependency of pydantic-settings only). Yet a `.env` that configures the server
must configure every command too (DESIGN §6): this reads the few lines such a file holds —
`KEY=value`, `export KEY=value`, quoted values, `#` comments — and nothing fancier (no variable
expansion, no multi-line values).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_FILE = ".env"


def read_env_file(path: str | os.PathLike[str] = ENV_FILE) -> dict[str, str]:
    """`path`'s variables; an absent or unreadable file is no configuration, not an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        if key:
            values[key] = _value(value.strip())
    return values


def _value(value: str) -> str:
    """A quoted value is taken whole; an unquoted one ends at a ` #` comment."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value.split(" #", 1)[0].rstrip()


def environment() -> Mapping[str, str]:
    """The variables a client is configured by: the working directory's `.env`, overridden by
    the process's environment, as for the server — where an empty value (`VAR=`) is no value,
    so it does not hide the file's."""
    return {**read_env_file(), **{name: value for name, value in os.environ.items() if value}}
