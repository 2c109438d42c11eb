"""What a command left behind, for the CLI tests (run in this process or as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import clean_env


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


def voicebook(*args: str, cwd: Path, stdin: str | None = None, **env: str) -> Outcome:
    """`python -m voicebook ARGS` as a fresh process in `cwd`, seeing only `env` of voicebook's
    variables (so the `.env` there, if any, is what it reads), with `stdin` piped in when
    given."""
    result = subprocess.run(
        [sys.executable, "-m", "voicebook", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(env),
        cwd=cwd,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)
