"""What a command left behind, for the CLI tests (run in this process or as a subprocess)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """stdout and stderr with whitespace collapsed (Rich wraps long lines)."""
        return " ".join((self.stdout + "\n" + self.stderr).split())

    def json(self) -> Any:
        """stdout as JSON: the whole of it, or this fails."""
        return json.loads(self.stdout)


Invoke = Callable[..., Outcome]
