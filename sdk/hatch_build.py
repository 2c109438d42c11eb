"""voicebook-sdk's build hook: the SDK's files come from the one source tree, `src/voicebook`.

Built from the repository (`pip install ./sdk`), the files are read from `../src`, so no copy is
ever committed; an sdist carries them under its own `src/`, so a wheel built from it holds the
same files. `SDK_FILES` is the import closure of `voicebook.sdk` (tests/test_sdk_distribution.py
imports every module of the wheel alone, so a new dependency of the SDK on the rest of voicebook
fails there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SDK_FILES = ("__init__.py", "py.typed", "models.py", "errors.py", "sdk")


class SdkSources(BuildHookInterface):
    """Adds the SDK's files to the sdist (under `src/voicebook`) and the wheel (`voicebook`)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        in_sdist = root / "src" / "voicebook"
        source = in_sdist if in_sdist.is_dir() else root.parent / "src" / "voicebook"
        target = "src/voicebook" if self.target_name == "sdist" else "voicebook"
        for name in SDK_FILES:
            build_data["force_include"][str(source / name)] = f"{target}/{name}"
