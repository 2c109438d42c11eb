"""`voicebook eval` as a user runs it: a subprocess with the scripted stand-in model as the LLM —
the example scenarios passing against a model that follows the prompt and failing against one
that writes before the caller's yes, the voice variant, judged intents, bad files, `--only`.
(Apart from test_agent_call.py so the two long files run on separate test workers.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_support import REPO, require_agent_extra, voicebook, writes_before_yes
from scripted_llm import rules_from_scenarios
from servers import clean_env

require_agent_extra()

FORMAT = "format: voicebook-eval/1\n"


def test_eval_runs_the_example_scenarios_against_the_scripted_model(
    scripted: Any, tmp_path: Path
) -> None:
    scenarios = REPO / "examples" / "scenarios.eval.yaml"
    scripted.model.add(rules_from_scenarios(scenarios))
    done = voicebook("eval", str(scenarios), "--json", env=clean_env(scripted.env()), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)
    assert {r["name"] for r in results} >= {
        "book the first free slot",
        "reschedule to the next slot",
        "cancel an appointment",
        "recover from a double booking",
        "wrong number, then corrected",
    }
    assert all(r["passed"] for r in results)
    checks = [c for r in results for c in r["checks"]]
    assert any(c["detail"] == "→ slot_taken" for c in checks)
    # the prompt's read-back: no write in the turn of a request, the write on the yes
    guarded = [c for c in checks if c["what"] == "no write before a yes"]
    assert len(guarded) >= 10 and all(c["passed"] for c in guarded)
    # "415 555 0101" said, "+14155550101" expected: the same number
    assert any(c["what"].startswith("identify_user(phone=<phone +1") for c in checks)
    assert any("slot_id=<from fetch_slots>" in c["what"] for c in checks)
    # no judge model named: the judged intents are reported, skipped, never failed
    judged = [c for c in checks if c["what"].startswith("judged: ")]
    assert judged and all(c["skipped"] and c["passed"] for c in judged)
    variants = {r["name"]: r["variant"] for r in results}
    assert variants["a caller on a phone line is never asked for the number"] == "voice"
    assert variants["book the first free slot"] == "text"
    systems = [json.dumps(r["messages"][0]) for r in scripted.model.requests]
    assert any("You are on a phone call" in s for s in systems)
    assert any("You are chatting in text" in s for s in systems)


BREAKING = REPO / "tests" / "prompt_breaking_model.yaml"


def test_the_example_scenarios_fail_a_model_that_writes_before_the_callers_yes(
    scripted: Any, tmp_path: Path
) -> None:
    """The same scenarios against a model scripted to identify, book, move and cancel in the
    turn of the request (never reading back, never waiting for a yes): exit 1, and each early
    write is named in the turn it happened."""
    import yaml

    scenarios = REPO / "examples" / "scenarios.eval.yaml"
    scripted.model.add(rules_from_scenarios(scenarios))
    scripted.model.add(yaml.safe_load(BREAKING.read_text())["rules"])
    done = voicebook("eval", str(scenarios), "--json", env=clean_env(scripted.env()), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout)}
    early = writes_before_yes(results)
    wrote = "wrote before the caller's yes: "
    assert early == {
        ("book the first free slot", 1, wrote + "identify_user"),
        ("book the first free slot", 3, wrote + "book_appointment"),
        ("reschedule to the next slot", 1, wrote + "identify_user"),
        ("reschedule to the next slot", 3, wrote + "book_appointment"),
        ("reschedule to the next slot", 5, wrote + "modify_appointment"),
        ("cancel an appointment", 5, wrote + "cancel_appointment"),
        ("wrong number, then corrected", 1, wrote + "identify_user"),
        ("recover from a double booking", 1, wrote + "identify_user, book_appointment"),
    }
    claimed = results["a claimed caller books"]["checks"]
    assert {"turn": 1, "what": "no identify_user", "passed": False} in [
        {k: c[k] for k in ("turn", "what", "passed")} for c in claimed
    ]
    failed = {name for name, r in results.items() if not r["passed"]}
    assert failed == {
        "book the first free slot",
        "reschedule to the next slot",
        "cancel an appointment",
        "recover from a double booking",
        "wrong number, then corrected",
        "a claimed caller books",
    }


def test_eval_voice_runs_the_voice_instructions(scripted: Any, tmp_path: Path) -> None:
    scenarios = REPO / "examples" / "scenarios.eval.yaml"
    scripted.model.add(rules_from_scenarios(scenarios))
    env = clean_env(scripted.env())
    args = ("eval", str(scenarios), "--only", "first free slot", "--json")
    done = voicebook(*args, "--voice", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["variant"] for r in json.loads(done.stdout)] == ["voice"]
    systems = [json.dumps(r["messages"][0]) for r in scripted.model.requests]
    assert systems and all("You are on a phone call" in s for s in systems)
    assert not any("You are chatting in text" in s for s in systems)


JUDGE_ASKS = "check if the following message fulfills the given intent. intent: {intent} "


def _judge_rule(intent: str, success: bool, reason: str) -> dict[str, Any]:
    """The scripted model as livekit's judge: its `check_intent` verdict for one intent."""
    key = JUDGE_ASKS.replace("{intent}", intent) + "message: {message}"
    return {key: [{"call": "check_intent", "args": {"success": success, "reason": reason}}]}


def test_eval_judges_intents_with_a_judge_model_and_skips_them_without(
    scripted: Any, tmp_path: Path
) -> None:
    scenarios = tmp_path / "judged.eval.yaml"
    scenarios.write_text(
        FORMAT + "scenarios:\n"
        "  - name: judged\n"
        "    turns:\n"
        "      - user: 'My number is 415 555 0131.'\n"
        "        not_called: [writes]\n"
        "        judge: ['reads the number back', 'offers a discount']\n"
        "        model:\n"
        "          - {say: 'That is 4 1 5, 5 5 5, 0 1 3 1, right?'}\n"
    )
    scripted.model.add(rules_from_scenarios(scenarios))
    scripted.model.add(_judge_rule("reads the number back", True, "It repeats the digits."))
    scripted.model.add(_judge_rule("offers a discount", False, "No discount is offered."))
    env = clean_env(scripted.env())
    skipped = voicebook("eval", str(scenarios), "--json", env=env, cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    (result,) = json.loads(skipped.stdout)
    verdicts = {c["what"]: (c["passed"], c["skipped"]) for c in result["checks"]}
    assert verdicts["judged: offers a discount"] == (True, True)
    assert not any("check_intent" in json.dumps(r) for r in scripted.model.requests)

    judged_env = clean_env({**scripted.env(), "VOICEBOOK_JUDGE_MODEL": "scripted-model"})
    judged = voicebook("eval", str(scenarios), "--json", env=judged_env, cwd=tmp_path)
    assert judged.returncode == 1, judged.stdout + judged.stderr
    (result,) = json.loads(judged.stdout)
    verdicts = {c["what"]: (c["passed"], c["skipped"], c["detail"]) for c in result["checks"]}
    assert verdicts["judged: reads the number back"] == (True, False, "judged: yes")
    assert verdicts["judged: offers a discount"] == (False, False, "No discount is offered.")
    asked = [r for r in scripted.model.requests if "check_intent" in json.dumps(r.get("tools"))]
    assert len(asked) == 2
    assert all("0 1 3 1" in json.dumps(r["messages"]) for r in asked)


def test_eval_fails_a_scenario_whose_expectations_do_not_hold(
    scripted: Any, tmp_path: Path
) -> None:
    scenarios = tmp_path / "wrong.yaml"
    scenarios.write_text(
        "format: voicebook-eval/1\n"
        "scenarios:\n"
        "  - name: expects a booking that never happens\n"
        "    turns:\n"
        "      - user: 'My number is 415 555 0109.'\n"
        "        expect:\n"
        "          - {tool: identify_user, outcome: ok}\n"
        "          - {tool: book_appointment}\n"
        "        model:\n"
        "          - {call: identify_user, args: {phone: '415 555 0109'}}\n"
        "          - {say: 'Thanks.'}\n"
    )
    scripted.model.add(rules_from_scenarios(scenarios))
    env = clean_env({**scripted.env(), "COLUMNS": "200"})
    done = voicebook("eval", str(scenarios), env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout
    assert "made: identify_user" in done.stdout
    assert "0/1 scenarios passed" in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("scenarios: [", "is not valid YAML"),
        (f"{FORMAT}scenarios:\n  - name: x\n    turns: []\n", "turns"),
        (
            f"{FORMAT}scenarios:\n  - name: x\n    turns:\n"
            "      - user: hi\n        expect: [{tool: fly}]\n",
            "unknown tool 'fly'",
        ),
        (
            f"{FORMAT}scenarios:\n  - name: x\n    turns:\n"
            "      - user: hi\n        expect: [{tool: fetch_slots, args: {date: {from: x}}}]\n",
            "{from: x}: say a path",
        ),
        # livekit's own scenarios.yaml (agent simulations) is another format: refused by name
        (
            "scenarios:\n  - name: x\n    instructions: be a caller\n",
            "it needs `format: voicebook-eval/1` at the top",
        ),
    ],
)
def test_eval_refuses_a_bad_scenario_file(
    content: str, message: str, scripted: Any, tmp_path: Path
) -> None:
    scenarios = tmp_path / "bad.yaml"
    scenarios.write_text(content)
    done = voicebook("eval", str(scenarios), env=clean_env(scripted.env()), cwd=tmp_path)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_eval_only_runs_the_named_scenarios(scripted: Any, tmp_path: Path) -> None:
    scenarios = REPO / "examples" / "scenarios.eval.yaml"
    scripted.model.add(rules_from_scenarios(scenarios))
    env = clean_env(scripted.env())
    done = voicebook("eval", str(scenarios), "--only", "DOUBLE", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["name"] for r in json.loads(done.stdout)] == ["recover from a double booking"]
    missing = voicebook("eval", str(scenarios), "--only", "nothing-like-it", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no scenario name contains 'nothing-like-it'" in missing.stderr
