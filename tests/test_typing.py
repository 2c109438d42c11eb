"""The package is typed for its users (PEP 561): `py.typed` ships with it, and the examples pass
`mypy --strict` against it — so a user's type checker sees the SDK's real types, not `Any`."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [ROOT / "examples" / "book_flow.py", ROOT / "examples" / "bff_app.py"]
PLANTED = """\
from voicebook import Client
from voicebook.models import ToolEvent

with Client() as vb:
    label: int = vb.fetch_slots("s").slots[0].label
    for event in vb.stream_events("s"):
        typed = event.typed
        if isinstance(typed, ToolEvent):
            typed.payload.duration_ms.is_integer()
"""


def mypy_strict(*paths: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cwd / ".mypy")]
    return subprocess.run(
        [*command, *map(str, paths)], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_the_package_says_it_is_typed() -> None:
    assert files("voicebook").joinpath("py.typed").is_file()


def test_the_examples_pass_mypy_strict(tmp_path: Path) -> None:
    checked = mypy_strict(*EXAMPLES, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mypy_sees_the_sdk_types(tmp_path: Path) -> None:
    """Without the marker (or with `Any` answers) these two bugs would pass unnoticed."""
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED)
    checked = mypy_strict(planted, cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout
    assert 'planted.py:5: error: Incompatible types in assignment (expression has type "str"' in (
        checked.stdout
    )
    assert 'planted.py:9: error: Item "None" of "float | None" has no attribute' in checked.stdout
