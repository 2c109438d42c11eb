"""`voicebook-sdk`, the SDK alone (sdk/): built from the same sources, installed in a fresh venv
with its dependencies from the package registry, and used there against a real `voicebook serve`.

- The wheel: its own name, voicebook's version, `py.typed`, and the three dependencies of the SDK
  with the same floors as voicebook's.
- Installed alone: no package of the server or the agent arrives (the figures are printed).
- Alone it works: every module of the wheel imports (so the SDK needs nothing of voicebook that
  the wheel does not ship) and a script books and follows the event stream.
- Next to `voicebook`: every file they share is the same bytes, so install order does not matter;
  uninstalling one removes the shared files and reinstalling the other restores them (README).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 runtime
    import tomli as tomllib

import voicebook
from servers import Server, clean_env, keyed_server
from voicebook import Client

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "k"
SDK_DEPENDENCIES = {"httpx", "pydantic", "websockets"}
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def normalized(requirement: str) -> str:
    """The project name of a requirement line, normalized (PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def pyproject(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())["project"]


def run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion; fail with its output if it does not exit 0."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=cwd, env=env)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(project: Path, out: Path) -> Path:
    """`pip wheel --no-deps <project>`: what `pip install ./sdk` builds."""
    run([*PIP, "wheel", "--quiet", "--no-deps", str(project), "--wheel-dir", str(out)])
    (wheel,) = out.glob("*.whl")
    return wheel


def record(wheel: Path) -> dict[str, str]:
    """The wheel's files (outside its .dist-info) with their sha256, from the archive itself."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: base64.urlsafe_b64encode(hashlib.sha256(archive.read(name)).digest()).decode()
            for name in archive.namelist()
            if ".dist-info/" not in name
        }


@dataclass(frozen=True)
class Venv:
    """A venv made for one test, with no pip of its own and nothing the repository provides."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def pip(self, *args: str) -> None:
        """This venv's packages, managed by the test's own pip (the venv has none)."""
        run([*PIP, "--python", self.python, *args])

    def site_packages(self) -> Path:
        """Where pip put the packages (`lib/python3.X/site-packages`)."""
        (path,) = self.path.glob("lib/python*/site-packages")
        return path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Its python, outside the repository and without PYTHONPATH: only what is installed."""
        env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}
        return run([self.python, *args], cwd=self.path, env=env)


def fresh_venv(path: Path) -> Venv:
    run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    return Venv(path)


@pytest.fixture(scope="module")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT / "sdk", tmp_path_factory.mktemp("sdk-wheel"))


@pytest.fixture(scope="module")
def full_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("full-wheel"))


@pytest.fixture(scope="module")
def sdk_venv(sdk_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = fresh_venv(tmp_path_factory.mktemp("sdk") / "venv")
    venv.pip("install", "--quiet", str(sdk_wheel))
    return venv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with keyed_server(tmp_path_factory, "sdk-server", API_KEY) as running:
        yield running


INSTALLED = """
import json, importlib.metadata as md
print(json.dumps({
    d.metadata["Name"]: sum(f.locate().stat().st_size for f in d.files or () if f.locate().exists())
    for d in md.distributions()
}))
"""

BOOK_AND_FOLLOW = """
import asyncio, importlib, json, pkgutil, sys
import voicebook
from voicebook import AsyncClient, Client

for module in pkgutil.walk_packages(voicebook.__path__, "voicebook."):
    importlib.import_module(module.name)

url, key = sys.argv[1:]
with Client(url, key) as vb:
    sid = vb.start_session(phone="+1 415 555 0123", name="Ann").session_id
    vb.identify_user(sid)
    slot = vb.fetch_slots(sid, limit=1).slots[0]
    booked = vb.book_appointment(sid, slot_id=slot.slot_id).appointment
    vb.end_conversation(sid)
    events = [event.type for event in vb.stream_events(sid)]

async def health():
    async with AsyncClient(url, key) as avb:
        return (await avb.health()).version

print(json.dumps({
    "file": voicebook.__file__, "version": voicebook.__version__, "session": sid,
    "booked": booked.id, "events": events, "server_version": asyncio.run(health()),
}))
"""


def test_the_sdk_wheel_is_voicebook_sdk_at_voicebooks_version_with_py_typed(
    sdk_wheel: Path,
) -> None:
    assert sdk_wheel.name == f"voicebook_sdk-{voicebook.__version__}-py3-none-any.whl"
    files = record(sdk_wheel)
    assert "voicebook/py.typed" in files
    assert "voicebook/sdk/client.py" in files
    assert not [name for name in files if name.startswith(("voicebook/server", "voicebook/cli"))]


def test_the_sdk_depends_on_httpx_websockets_pydantic_with_voicebooks_floors() -> None:
    sdk = pyproject(ROOT / "sdk" / "pyproject.toml")["dependencies"]
    full = pyproject(ROOT / "pyproject.toml")["dependencies"]
    assert {normalized(line) for line in sdk} == SDK_DEPENDENCIES
    assert set(sdk) <= set(full), "the SDK's floors differ from voicebook's"


def test_installed_alone_it_brings_nothing_of_the_server_or_the_agent(sdk_venv: Venv) -> None:
    full = pyproject(ROOT / "pyproject.toml")
    toolkit = [*full["dependencies"], *full["optional-dependencies"]["agent"]]
    not_for_the_sdk = {normalized(line) for line in toolkit} - SDK_DEPENDENCIES
    sizes = json.loads(sdk_venv.run("-c", INSTALLED).stdout)
    installed = {normalized(name) for name in sizes}
    assert "voicebook-sdk" in installed
    assert installed & not_for_the_sdk == set()
    print(f"voicebook-sdk alone: {len(sizes)} packages, {sum(sizes.values()) / 1e6:.1f} MB")


def test_alone_it_books_and_follows_the_events_against_a_real_server(
    sdk_venv: Venv, server: Server
) -> None:
    out = json.loads(sdk_venv.run("-c", BOOK_AND_FOLLOW, server.url, API_KEY).stdout)
    assert Path(out["file"]).is_relative_to(sdk_venv.path), "not the installed SDK"
    assert out["version"] == voicebook.__version__
    assert out["server_version"] == voicebook.__version__
    assert out["events"][-1] == "session_closed"
    with Client(server.url, API_KEY) as vb:
        summary = vb.get_session(out["session"]).summary
    assert summary is not None
    assert [a.id for a in summary.booked_appointments] == [out["booked"]]


def test_every_file_the_two_distributions_share_is_the_same_bytes(
    sdk_wheel: Path, full_wheel: Path
) -> None:
    sdk, full = record(sdk_wheel), record(full_wheel)
    assert {name: full.get(name) for name in sdk} == sdk


def test_with_both_installed_uninstalling_one_then_reinstalling_the_other_restores_the_sdk(
    sdk_wheel: Path, full_wheel: Path, tmp_path: Path
) -> None:
    venv = fresh_venv(tmp_path / "venv")
    venv.pip("install", "--quiet", "--no-deps", str(sdk_wheel), str(full_wheel))
    versions = json.loads(
        venv.run(
            "-c",
            "import json, importlib.metadata as md;"
            "print(json.dumps({n: md.version(n) for n in ('voicebook', 'voicebook-sdk')}))",
        ).stdout
    )
    assert versions == {"voicebook": voicebook.__version__, "voicebook-sdk": voicebook.__version__}

    shared = [venv.site_packages() / name for name in record(sdk_wheel)]
    venv.pip("uninstall", "--quiet", "--yes", "voicebook")
    assert not [path for path in shared if path.exists()], "pip kept them: update the README"
    venv.pip("install", "--quiet", "--force-reinstall", "--no-deps", str(sdk_wheel))
    assert [path for path in shared if not path.exists()] == []


def test_the_full_wheel_carries_the_console_and_the_sdk_wheel_does_not(
    sdk_wheel: Path, full_wheel: Path
) -> None:
    """`voicebook serve` serves the console from the installed package (no build step): every
    asset in the source tree is in the wheel, and none of it in the SDK's."""
    static = ROOT / "src" / "voicebook" / "server" / "console" / "static"
    assets = {f"voicebook/server/console/static/{p.name}" for p in static.iterdir() if p.is_file()}
    assert {"index.html", "app.js", "console.css"} <= {name.rsplit("/", 1)[1] for name in assets}
    assert assets <= set(record(full_wheel))
    assert not any("/console/" in name for name in record(sdk_wheel))
