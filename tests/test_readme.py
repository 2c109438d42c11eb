"""The READMEs run as printed: every shell and Python block is a test case.

README.md and examples/README.md are read for fenced blocks in `bash`, `sh`, `console` or
`python`; each is one case, named by its file, heading and index under that heading, and runs
exactly as printed, in the state a reader is in after the quick start. (benchmarks/README.md is
not read: each of its commands is a benchmark run of minutes on Postgres and Redis.)

- A real `voicebook serve` (the console script the quick start runs) listens on the address the
  README names, 127.0.0.1:8000, inside a network namespace of this module's own: there that
  address is this test's server and never another process of the machine (a developer's own
  server on 8000 is the usual case). Its working directory holds the reader's `.env`: a copy of
  `.env.example`, which the README says works as copied (no service key, as after the quick
  start).
- Each block runs in a fresh working directory that looks like the checkout (links to its files,
  so `examples/…` and `tests/scripted_llm.py` resolve, and a file a block writes stays there),
  with a copy of that `.env`, HOME a fresh directory (the default SQLite file lives under it;
  its `.curlrc` says `fail-with-body`, so an HTTP error answer fails a `curl` line as it should),
  the venv first on PATH, no voicebook variable inherited and stdin at end of file (an
  interactive command sees Ctrl-D at once).
- Shell blocks go through one bash, a command at a time (a command is a line, or lines joined by
  a trailing backslash, so a heredoc or a loop over several lines is not one; `$ ` lines of a
  `console` block are its commands): the first to exit non-zero fails the case, naming its line.
  A command that starts a long-running server (`voicebook serve`, `voicebook agent`, `uvicorn`,
  or any command ending in `&`) runs in the background, and the next command starts once it
  accepts connections on its `--port` (`voicebook serve`: 8000). Whatever a block started is
  stopped when it ends. A block that starts its own `voicebook serve` gets a network namespace
  of its own, where 8000 is free. (Network namespaces need root or, for anyone else,
  unprivileged user namespaces; without either the cases skip saying so, or fail under
  VOICEBOOK_REQUIRE_SERVICES.)
- Python blocks run as a file with the venv's python.

A block that cannot run here (it installs from the network, or needs a paid or remote service)
says so in its README with `<!-- readme-test: skip <reason> -->` on the line before its fence,
and is reported as skipped with that reason; so is a block printed twice (both READMEs show the
offline eval), after its first run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import service_missing
from servers import clean_env

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DOCS = ("README.md", "examples/README.md")
SHELL = {"bash", "sh", "console"}
RUNNABLE = SHELL | {"python"}
SERVE_PORT = 8000
"""`voicebook serve`'s default port, the address the README's commands use."""
BLOCK_TIMEOUT_S = 90.0
"""A block that has not finished by then hangs (the SDK snippet once waited for ever)."""

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<language>\S*)")
ANNOTATION = re.compile(r"\s*<!--\s*readme-test:(?P<directive>.*?)-->\s*")
SKIP = re.compile(r"\s*skip\s+(?P<reason>\S.*?)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SERVERS = (("voicebook", "serve"), ("voicebook", "agent"), ("uvicorn",))

WAIT_FOR_PORT = r"""
readme_wait() {  # port pid line: until 127.0.0.1:port accepts, unless the server exits first
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "readme-test: line $3 exited before listening on port $1" >&2
      exit 1
    fi
    sleep 0.05
  done
}
"""


@dataclass(frozen=True)
class Block:
    """One fenced block of a README, where it is and what its annotation says."""

    doc: str
    heading: str
    index: int
    line: int
    language: str
    text: str
    skip: str | None

    @property
    def name(self) -> str:
        """The case's id: the heading in plain characters, so `-k` can select it."""
        heading = " ".join(re.sub(r"[^\w.()/ -]", " ", self.heading).split())
        return f"{self.doc}: {heading} #{self.index}"


def fenced_blocks(doc: str) -> list[Block]:
    """Every fenced block of `doc` (runnable or not), with the heading it sits under."""
    lines = (ROOT / doc).read_text().splitlines()
    blocks: list[Block] = []
    heading = "(top)"
    per_heading: Counter[str] = Counter()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if opening is None:
            if lines[number].startswith("#"):
                heading = lines[number].lstrip("#").strip()
            number += 1
            continue
        fence = opening["fence"]
        end = next(
            (i for i in range(number + 1, len(lines)) if lines[i].strip() == fence), len(lines)
        )
        per_heading[heading] += 1
        blocks.append(
            Block(
                doc=doc,
                heading=heading,
                index=per_heading[heading],
                line=number + 1,
                language=opening["language"],
                text="\n".join(lines[number + 1 : end]) + "\n",
                skip=_skip_reason(lines[:number]),
            )
        )
        number = end + 1
    return blocks


def _skip_reason(before: Sequence[str]) -> str | None:
    """The reason of a `readme-test: skip` annotation on the last non-blank line before a fence."""
    previous = next((line for line in reversed(before) if line.strip()), "")
    annotation = ANNOTATION.fullmatch(previous)
    skip = SKIP.fullmatch(annotation["directive"]) if annotation else None
    return skip["reason"] if skip else None


def runnable_blocks() -> list[Block]:
    return [block for doc in DOCS for block in fenced_blocks(doc) if block.language in RUNNABLE]


@dataclass(frozen=True)
class Command:
    """One shell command of a block: its text (continuations joined) and its first line."""

    line: int
    text: str

    def words(self) -> list[str]:
        joined = self.text.replace("\\\n", " ")  # a continued line is one command
        lexer = shlex.shlex(joined, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        return list(lexer)

    def program(self) -> list[str]:
        """The words after any leading `NAME=value` assignments."""
        words = self.words()
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        return words

    def backgrounded(self) -> bool:
        words = self.words()
        return bool(words) and words[-1] == "&"

    def starts_server(self) -> bool:
        program = self.program()
        return any(tuple(program[: len(prefix)]) == prefix for prefix in SERVERS)

    def port(self) -> int:
        words = self.words()
        for i, word in enumerate(words[:-1]):
            if word == "--port":
                return int(words[i + 1])
            if word.startswith("--port="):
                return int(word.removeprefix("--port="))
        if self.program()[:2] == ["voicebook", "serve"]:
            return SERVE_PORT
        raise AssertionError(f"line {self.line} runs in the background but names no --port")


def shell_commands(block: Block) -> list[Command]:
    """The block's commands; a `console` block's are its `$ ` lines (the rest is output)."""
    commands: list[Command] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.text.splitlines(), start=block.line + 1):
        line = raw
        if block.language == "console" and not pending:
            if not raw.startswith("$ "):
                continue
            line = raw[2:]
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = offset
        if line.endswith("\\"):
            pending.append(line)
            continue
        commands.append(Command(start, "\n".join([*pending, line])))
        pending = []
    return commands


def shell_script(block: Block) -> str:
    """A bash script running the block a command at a time: servers in the background, waited
    for; the first command that fails ends it with its status, naming its line."""
    parts = [WAIT_FOR_PORT]
    for command in shell_commands(block):
        where = f"{block.doc}:{command.line}"
        if command.backgrounded():
            parts.append(f"{command.text}\nreadme_wait {command.port()} $! {where}\n")
        elif command.starts_server():
            # The newline ends a trailing comment before the group is put in the background.
            parts.append(f"{{\n{command.text}\n}} &\nreadme_wait {command.port()} $! {where}\n")
        else:
            parts.append(
                f"{command.text}\n"
                "readme_status=$?\n"
                'if [ "$readme_status" -ne 0 ]; then\n'
                f'  echo "readme-test: line {where} exited $readme_status" >&2\n'
                '  exit "$readme_status"\n'
                "fi\n"
            )
    return "".join(parts)


def starts_voicebook_serve(block: Block) -> bool:
    return block.language in SHELL and any(
        command.program()[:2] == ["voicebook", "serve"] for command in shell_commands(block)
    )


class NetworkNamespace:
    """A network namespace with only a loopback interface, held open by a sleeping process;
    `command(argv)` runs argv inside it (nsenter). As root it is a plain network namespace;
    otherwise it sits in a user namespace of its own, where an unprivileged user may make one."""

    def __init__(self) -> None:
        script = "ip link set lo up && echo up && exec sleep infinity"
        root = os.geteuid() == 0
        create = ["--net"] if root else ["--user", "--map-root-user", "--net"]
        self._enter = ["--net"] if root else ["--user", "--net", "--preserve-credentials"]
        try:
            self._holder = subprocess.Popen(
                ["unshare", *create, "--", "sh", "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except FileNotFoundError as missing:
            service_missing("a private network namespace (util-linux unshare)", missing)
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != "up":
            assert self._holder.stderr is not None
            why = self._holder.stderr.read().strip() or f"exit {self._holder.wait()}"
            service_missing("a private network namespace (unshare --net)", why)

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--target={self._holder.pid}", *self._enter, "--", *argv]

    def close(self) -> None:
        self._holder.kill()
        self._holder.wait()


@contextlib.contextmanager
def network_namespace() -> Iterator[NetworkNamespace]:
    namespace = NetworkNamespace()
    try:
        yield namespace
    finally:
        namespace.close()


def reader_directory(path: Path) -> Path:
    """A working directory that looks like the checkout, with the reader's `.env` and a HOME."""
    path.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in {".env", ".git", "voicebook.toml"}:
            (path / entry.name).symlink_to(entry)
    shutil.copyfile(ROOT / ".env.example", path / ".env")
    (path / "home").mkdir()
    (path / "home" / ".curlrc").write_text("fail-with-body\n")
    return path


def reader_env(directory: Path) -> dict[str, str]:
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return clean_env(HOME=str(directory / "home"), PATH=path)


def run_in_group(argv: Sequence[str], *, cwd: Path, log: Path, timeout: float) -> int | None:
    """Run argv in a process group of its own, output to `log`; its return code, or None when
    it outlived `timeout`. Everything it started (its servers) is stopped before returning."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=reader_env(cwd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (servers drain), SIGKILL what is left after 15 s."""
    for sent, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sent)
        deadline = time.monotonic() + grace
        while _group_alive(process) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _group_alive(process):
            return


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkNamespace]:
    """The reader's `voicebook serve` on 127.0.0.1:8000 in this module's network namespace."""
    directory = reader_directory(tmp_path_factory.mktemp("readme") / "server")
    with network_namespace() as namespace:
        log = directory / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                namespace.command(["voicebook", "serve"]),
                cwd=directory,
                env=reader_env(directory),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait = f"{WAIT_FOR_PORT}readme_wait {SERVE_PORT} {server.pid} 'voicebook serve'"
            ready = subprocess.run(
                namespace.command(["bash", "-c", wait]), timeout=60, capture_output=True
            )
            assert ready.returncode == 0, log.read_text(errors="replace")
            yield namespace
        finally:
            stop_group(server)


def run_block(
    block: Block, namespace: NetworkNamespace, directory: Path, timeout: float = BLOCK_TIMEOUT_S
) -> tuple[int | None, str]:
    """Run the block in `directory` inside `namespace`: its exit status (None: still running
    at `timeout`, then stopped) and its output, its servers' included."""
    if block.language == "python":
        (directory / "readme_block.py").write_text(block.text)
        argv = [str(VENV_BIN / "python"), "readme_block.py"]
    else:
        (directory / "readme_block.sh").write_text(shell_script(block))
        argv = ["bash", "readme_block.sh"]
    log = directory / "output.log"
    status = run_in_group(namespace.command(argv), cwd=directory, log=log, timeout=timeout)
    return status, log.read_text(errors="replace")


BLOCKS = runnable_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_block_runs_as_printed(
    block: Block, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if block.skip:
        pytest.skip(f"readme-test: skip {block.skip}")
    first = next(b for b in BLOCKS if (b.language, b.text) == (block.language, block.text))
    if first is not block:
        pytest.skip(f"the same commands as {first.name}, run there")
    directory = reader_directory(tmp_path / "work")
    with contextlib.ExitStack() as stack:
        if starts_voicebook_serve(block):
            namespace = stack.enter_context(network_namespace())
        else:
            namespace = request.getfixturevalue("served")
        status, output = run_block(block, namespace, directory)
    where = f"{block.doc}:{block.line}"
    assert status is not None, f"{where} still running after {BLOCK_TIMEOUT_S:.0f} s:\n{output}"
    assert status == 0, f"{where} exited {status}:\n{output}"


def test_every_fence_names_its_language() -> None:
    """An untagged fence would hide a shell command from the runner."""
    untagged = [
        f"{block.doc}:{block.line}"
        for doc in DOCS
        for block in fenced_blocks(doc)
        if not block.language
    ]
    assert untagged == []


def test_every_annotation_is_a_skip_with_a_reason_on_a_runnable_block() -> None:
    """Any other `readme-test:` line (a typo, one above prose or a TOML block) would skip
    nothing, silently."""
    misplaced = []
    for doc in DOCS:
        lines = (ROOT / doc).read_text().splitlines()
        openings = {block.line: block for block in fenced_blocks(doc)}
        for number, line in enumerate(lines, start=1):
            if ANNOTATION.fullmatch(line):
                following = next(
                    (n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), 0
                )
                block = openings.get(following)
                if block is None or block.language not in RUNNABLE or block.skip is None:
                    misplaced.append(f"{doc}:{number}: {line.strip()}")
    assert misplaced == []


def harness_block(language: str, text: str) -> Block:
    """A block written for the tests of the runner itself (fence on line 1)."""
    return Block("self-test", "runner", 1, 1, language, text, None)


def test_console_blocks_run_their_dollar_lines_only() -> None:
    block = harness_block("console", "$ echo one\none\n$ voicebook --version \\\n  --help\nout\n")
    commands = shell_commands(block)
    assert [(c.line, c.text) for c in commands] == [
        (2, "echo one"),
        (4, "voicebook --version \\\n  --help"),
    ]


def test_the_first_failing_command_ends_its_block_naming_its_line(
    served: NetworkNamespace, tmp_path: Path
) -> None:
    block = harness_block("bash", "true\n# a comment\nfalse\necho not reached\n")
    status, output = run_block(block, served, reader_directory(tmp_path / "work"))
    assert status == 1
    assert "self-test:4 exited 1" in output
    assert "not reached" not in output


def test_an_http_error_answer_fails_a_curl_line(served: NetworkNamespace, tmp_path: Path) -> None:
    block = harness_block("bash", "curl -s localhost:8000/session/no-such-session-0123456789\n")
    status, output = run_block(block, served, reader_directory(tmp_path / "work"))
    assert status == 22, output  # curl's "HTTP error" status, from the reader's .curlrc


def test_a_server_line_is_waited_for_then_stopped(tmp_path: Path) -> None:
    """The server line ends in a comment (the background `&` must not land in it), the next
    line needs the server up, and nothing listens once the block is done."""
    text = "voicebook serve --port 8123   # in the background\ncurl -s localhost:8123/healthz\n"
    block = harness_block("bash", text)
    with network_namespace() as namespace:
        status, output = run_block(block, namespace, reader_directory(tmp_path / "work"))
        assert status == 0, output
        probe = ["bash", "-c", "(exec 3<>/dev/tcp/127.0.0.1/8123)"]
        assert subprocess.run(namespace.command(probe), capture_output=True).returncode != 0


def test_a_block_that_never_ends_is_stopped_and_reported(
    served: NetworkNamespace, tmp_path: Path
) -> None:
    block = harness_block("python", "import threading\n\nthreading.Event().wait()\n")
    status, _ = run_block(block, served, reader_directory(tmp_path / "work"), timeout=1.0)
    assert status is None
