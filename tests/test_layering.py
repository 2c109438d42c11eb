"""DESIGN §2's one-way dependencies, checked in a fresh interpreter: the server package never
imports the agent (the CLI attaches the receptionist to the console's Try-it tab), and an app
built without the CLI says how to get one instead of failing."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from voicebook.config import Settings
from voicebook.server.app import create_app


def test_the_server_package_imports_no_agent() -> None:
    code = (
        "import sys, json, pkgutil, importlib\n"
        "import voicebook.server\n"
        "for info in pkgutil.walk_packages(voicebook.server.__path__, 'voicebook.server.'):\n"
        "    importlib.import_module(info.name)\n"
        "from voicebook.server.app import create_app\n"
        "create_app()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    forbidden = ("voicebook.agent", "voicebook.cli", "livekit.agents", "livekit.plugins")
    agent = [m for m in loaded if m.startswith(forbidden)]
    assert agent == [], agent


def test_no_server_module_imports_the_agent_even_lazily() -> None:
    """An import inside a function escapes the check above until it runs: read the source."""
    import voicebook.server

    root = Path(voicebook.server.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith(("voicebook.agent", "voicebook.cli", "livekit.agents"))
            ]
    assert found == [], found


def test_an_app_built_without_the_cli_has_no_receptionist_and_says_so(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'voicebook.db'}"))
    with TestClient(app) as client:
        me = client.get("/console/api/me").json()
    assert me["try_it"]["available"] is False
    assert me["try_it"]["code"] == "try_it_not_attached"
    assert "voicebook serve" in me["try_it"]["message"]
