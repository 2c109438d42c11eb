"""Which files the configuration is read from, in a module that imports nothing heavy.

`Settings` (config.py) reads `.env` in the working directory and the business file; the CLI's
greeting cache (cli/greeting_cache.py) fingerprints the same files before pydantic has loaded.
Both ask this module, so they cannot disagree on which file is the business file.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_FILE = ".env"
DEFAULT_FILE = "voicebook.toml"
"""The business file read when VOICEBOOK_BUSINESS_FILE names none."""


def business_file_path() -> Path | None:
    """The business file to read: VOICEBOOK_BUSINESS_FILE (environment or `.env`), else
    voicebook.toml in the working directory when it exists."""
    named = os.environ.get("VOICEBOOK_BUSINESS_FILE", "").strip()
    if not named and Path(ENV_FILE).is_file():
        from dotenv import dotenv_values  # only with a .env: the greeting's path stays light

        named = (dotenv_values(ENV_FILE).get("VOICEBOOK_BUSINESS_FILE") or "").strip()
    if named:
        return Path(named).expanduser()
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None
