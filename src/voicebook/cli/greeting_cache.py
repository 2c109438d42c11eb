"""The greeting `voicebook call --text` showed last time with the same configuration, so the
caller reads it a fraction of a second after the command starts instead of after pydantic and
the settings have loaded (issue 13: the greeting within 1.5× of `voicebook --version`; loading
Settings alone takes longer than that).

Settings still decides the greeting (AGENT_GREETING, the business file's greeting, the default);
this module only remembers its answer under a digest of everything that answer can depend on:
the whole environment, the working directory, the bytes of `.env` and of the business file
(config_files says which), and the code that decides it (the package version and the source
files' modification times). A change to any of them is a miss, and a miss only costs the wait
this saves: the command then shows the greeting after loading Settings, as it always did.

The file holds the digest (SHA-256, so no variable's value is kept in clear) and the greeting;
a file that cannot be read or written is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import platformdirs

import voicebook
from voicebook.config_files import ENV_FILE, business_file_path

CACHE_FILE = "greeting.json"
DECIDING_MODULES = ("config.py", "business_file.py", "config_files.py", "agent/greeting.py")
"""The sources of the code that turns the configuration into the greeting."""


def cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("voicebook", appauthor=False)) / CACHE_FILE


def configuration_digest() -> str:
    """A digest of every input of the greeting (see the module's docstring)."""
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogateescape")
            digest.update(len(data).to_bytes(8, "big") + data)

    package = Path(voicebook.__file__).parent
    add(voicebook.__version__, os.getcwd())
    for module in DECIDING_MODULES:
        add(module, _stat_key(package / module))
    for name, value in sorted(os.environ.items()):
        add(name, value)
    for path in (Path(ENV_FILE), business_file_path()):
        add(str(path), _contents(path))
    return digest.hexdigest()


def recall() -> str | None:
    """The remembered greeting when the configuration is the one it was remembered for."""
    try:
        saved = json.loads(cache_path().read_text(encoding="utf-8"))
        if saved.get("digest") == configuration_digest() and isinstance(saved["greeting"], str):
            return str(saved["greeting"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return None


def remember(greeting: str) -> None:
    """Keep `greeting` for the next run with this configuration (best effort: a read-only
    cache directory only means the next run waits for Settings)."""
    path = cache_path()
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    document = json.dumps({"digest": configuration_digest(), "greeting": greeting})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(document, encoding="utf-8")
        os.replace(partial, path)  # atomic: a concurrent run reads the old file or the new one
    except OSError:
        with contextlib.suppress(OSError):  # e.g. the cache "directory" is a file
            partial.unlink(missing_ok=True)


def _stat_key(path: Path) -> str:
    try:
        status = path.stat()
    except OSError:
        return "absent"
    return f"{status.st_mtime_ns}:{status.st_size}"


def _contents(path: Path | None) -> bytes:
    if path is None:
        return b"none"
    try:
        return b"file:" + path.read_bytes()
    except OSError:
        return b"absent"
