"""A local OpenAI-compatible chat-completions server that answers from a rule book.

The one stand-in the test suite allows (for a paid LLM API): the agent reaches it through the
real livekit openai plugin over real HTTP, exactly as it reaches OpenRouter or a local vLLM.

The model is stateless. For each request it finds the last user message and counts the tool
rounds after it (`step`: assistant messages with tool calls; a line the agent said meanwhile,
such as a filler while a tool was slow, is not a step); the answer is `rules[user text][step]`:

    {"say": "text"}                                   a plain answer
    {"call": "fetch_slots", "args": {...}}            one tool call
    {"calls": [{"call": ..., "args": ...}, ...]}      parallel tool calls
    {"status": 500}                                   an HTTP error instead of an answer

Every tool call gets a fresh id on every request, as providers mint them: a request asked again
(a retried LLM request, a turn replayed after a barge-in) gets other ids than the first time.

A user text with no rule gets {"say": "(no rule for: ...)"}; a step past the end of its list
gets the last entry if it is a `say`, so a model never loops on tool calls; with
`tool_choice: "none"` (the session's "enough tool rounds") a scripted call becomes a short
text. String arguments of the form "$tool.path.to.0.field" are read from the newest output of
that tool in the conversation, so a script can book the slot the server offered a moment ago.
A user text may hold placeholders, e.g. "It's {code}.": it then matches any text of that shape,
and "{code}" in the script's string arguments is what the caller said there (the verification
code `voicebook eval` reads from the texts the server sent).

Every answer is streamed as a real provider streams it: the role first, text or tool-call
arguments split across several chunks, the finish reason, then a usage chunk (prompt and
completion tokens counted as characters / 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Rules = Mapping[str, Sequence[Mapping[str, Any]]]
MODEL = "scripted-model"


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _resolve(path: str, outputs: Mapping[str, Any]) -> Any:
    tool, *keys = path.split(".")
    value: Any = outputs.get(tool)
    for key in keys:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return f"<nothing at ${path}>"
    return value


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(args: Any, outputs: Mapping[str, Any], said: Mapping[str, str] | None = None) -> Any:
    if isinstance(args, str) and args.startswith("$"):
        return _resolve(args[1:], outputs)
    if isinstance(args, str) and said:
        return _PLACEHOLDER.sub(lambda m: said.get(m.group(1), m.group(0)), args)
    if isinstance(args, dict):
        return {key: _fill(value, outputs, said) for key, value in args.items()}
    if isinstance(args, list):
        return [_fill(value, outputs, said) for value in args]
    return args


def _pattern(text: str) -> re.Pattern[str] | None:
    """A user text with placeholders ("it's {code}.") as a regex that captures them."""
    parts = _PLACEHOLDER.split(text)
    if len(parts) == 1:
        return None
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


def tool_outputs(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The newest output of each tool, decoded from JSON when it is JSON."""
    names: dict[str, str] = {}
    outputs: dict[str, Any] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
        if message.get("role") == "tool":
            content = _text_of(message.get("content"))
            try:
                outputs[names.get(message.get("tool_call_id", ""), "?")] = json.loads(content)
            except ValueError:
                outputs[names.get(message.get("tool_call_id", ""), "?")] = content
    return outputs


class ScriptedModel:
    """The rule book and what was asked of it (`requests`, the decoded request bodies)."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules: dict[str, list[dict[str, Any]]] = {}
        self.patterns: list[tuple[re.Pattern[str], list[dict[str, Any]]]] = []
        self.requests: list[dict[str, Any]] = []
        self.add(rules or {})

    def add(self, rules: Rules) -> None:
        for text, steps in rules.items():
            key = normalise(text)
            self.rules[key] = [dict(step) for step in steps]
            pattern = _pattern(key)
            if pattern is not None:
                self.patterns.append((pattern, self.rules[key]))

    def _steps(self, said: str) -> tuple[list[dict[str, Any]] | None, dict[str, str]]:
        """The script for what the caller said, and the placeholders it filled."""
        key = normalise(said)
        if key in self.rules:
            return self.rules[key], {}
        for pattern, steps in self.patterns:
            match = pattern.fullmatch(key)
            if match:
                return steps, match.groupdict()
        return None, {}

    def answer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        messages = list(body.get("messages") or ())
        last_user = max(
            (i for i, m in enumerate(messages) if m.get("role") == "user"), default=None
        )
        if last_user is None:
            return {"say": "Hello."}
        said = _text_of(messages[last_user].get("content"))
        step = sum(
            1
            for m in messages[last_user + 1 :]
            if m.get("role") == "assistant" and m.get("tool_calls")
        )
        steps, placeholders = self._steps(said)
        if not steps:
            return {"say": f"(no rule for: {said})"}
        if step >= len(steps):
            return steps[-1] if "say" in steps[-1] else {"say": "Is there anything else?"}
        entry = steps[step]
        if ("call" in entry or "calls" in entry) and body.get("tool_choice") == "none":
            return {"say": "(tools are off for this answer)"}  # as a real model obeys
        if "call" in entry or "calls" in entry:
            outputs = tool_outputs(messages)
            calls = entry.get("calls") or [entry]
            return {
                "calls": [
                    {
                        "call": c["call"],
                        "args": _fill(c.get("args", {}), outputs, placeholders),
                        "id": f"call_{uuid.uuid4().hex[:24]}",
                    }
                    for c in calls
                ]
            }
        return entry


def _chunks(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _sse(payload: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def stream(answer: Mapping[str, Any], body: Mapping[str, Any]) -> Iterator[bytes]:
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body.get("model") or MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    yield chunk({"role": "assistant", "content": ""})
    produced = ""
    if "calls" in answer:
        for index, call in enumerate(answer["calls"]):
            arguments = json.dumps(call["args"])
            produced += call["call"] + arguments
            head = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call["call"]}}]})
            for piece in _chunks(arguments):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
    else:
        text = str(answer.get("say", ""))
        produced = text
        for piece in _chunks(text):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
    prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
    completion_tokens = max(1, len(produced) // 4)
    yield _sse(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model") or MODEL,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )
    yield b"data: [DONE]\n\n"


def create_app(model: ScriptedModel) -> Starlette:
    async def completions(request: Request) -> Response:
        body = await request.json()
        model.requests.append(body)
        answer = model.answer(body)
        if "status" in answer:
            status = int(answer["status"])
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=status)
        if not body.get("stream"):
            return JSONResponse({"error": {"message": "only streaming is scripted"}}, 400)
        return StreamingResponse(stream(answer, body), media_type="text/event-stream")

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


class ScriptedServer:
    """The scripted model served on a loopback port from a background thread."""

    def __init__(self, model: ScriptedModel, port: int | None = None) -> None:
        self.model = model
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            create_app(model), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> ScriptedServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the scripted model server did not start")
            threading.Event().wait(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def env(self) -> dict[str, str]:
        """The variables that point voicebook's agent at this server."""
        return {
            "OPENAI_API_BASE": self.base_url,
            "OPENAI_API_KEY": "scripted",
            "OPENROUTER_API_KEY": "",
            "VOICEBOOK_LLM_MODEL": MODEL,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rules_from_scenarios(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The `model:` scripts of a `voicebook eval` scenario file, keyed by the caller's line."""
    import yaml

    rules: dict[str, list[dict[str, Any]]] = {}
    for scenario in yaml.safe_load(Path(path).read_text())["scenarios"]:
        for turn in scenario["turns"]:
            if "model" not in turn:
                continue
            key = normalise(turn["user"])
            if key in rules and rules[key] != turn["model"]:
                raise ValueError(f"two scripts for the same caller line: {turn['user']!r}")
            rules[key] = turn["model"]
    return rules


@contextlib.contextmanager
def scripted_llm(rules: Rules | None = None) -> Iterator[ScriptedServer]:
    server = ScriptedServer(ScriptedModel(rules)).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """`python tests/scripted_llm.py examples/scenarios.eval.yaml [--port N]`: serve a scenario
    file's scripts, for running `voicebook eval` or `voicebook call --text` offline."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("scenarios", help="a voicebook eval scenario file")
    parser.add_argument("--port", type=int, default=8808)
    args = parser.parse_args()
    server = ScriptedServer(ScriptedModel(rules_from_scenarios(args.scenarios)), args.port).start()
    print(f"scripted model at {server.base_url} (OPENAI_API_BASE); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
