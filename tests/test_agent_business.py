"""What the receptionist knows about the business (the business file): the prompt's brief, the
token budget of prompt plus tools, the FAQ searched with `answer_question` past the cut-off,
and the example clinic (examples/voicebook.toml) through `voicebook call --text` and
`voicebook eval` against the scripted stand-in model."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agent_support import REPO, require_agent_extra, voicebook, writes_before_yes
from scripted_llm import rules_from_scenarios
from servers import clean_env, running_server

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport the package depends on there
    import tomli as tomllib

require_agent_extra()

from voicebook.agent.faq import NAME as FAQ_TOOL  # noqa: E402
from voicebook.agent.faq import SCHEMA, answer, call_tool_schemas, search  # noqa: E402
from voicebook.agent.knowledge import FAQ_INLINE_CHARS, brief, faq_lines  # noqa: E402
from voicebook.agent.prompt import COMMON, KNOWN_LINE, common_text, instructions  # noqa: E402
from voicebook.agent.schemas import tool_schemas  # noqa: E402
from voicebook.config import Settings, load_settings  # noqa: E402
from voicebook.scheduling.business import Business, FaqEntry, Resource, Service  # noqa: E402
from voicebook.scheduling.hours import parse_hours  # noqa: E402

CLINIC = REPO / "examples" / "voicebook.toml"
CLINIC_SCENARIOS = REPO / "examples" / "clinic.eval.yaml"
SALON = REPO / "benchmarks" / "salon.toml"
BUDGET = 1500


def clinic_settings() -> Settings:
    with CLINIC.open("rb") as file:
        return load_settings(**tomllib.load(file))


@pytest.fixture(scope="module")
def benchmark_f() -> ModuleType:
    """Benchmark F (benchmarks/agent.py): its counting is the figure the README reports."""
    pytest.importorskip("tiktoken")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        module = importlib.import_module("agent")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    count, how = module.tokenizer()
    assert how == "tiktoken cl100k_base", "the real tokenizer, not the estimate"
    module.count = count
    return module


# --- the prompt -------------------------------------------------------------------------------


def test_without_a_business_file_the_prompt_and_tools_are_as_before(isolated_env: Path) -> None:
    business = load_settings().business_model
    assert brief(business) == ""
    assert common_text(business=business) == COMMON
    assert common_text(known_line=True, business=business) == KNOWN_LINE
    rendered = instructions(business=business).render(modality="audio")
    assert rendered == instructions().render(modality="audio")
    assert call_tool_schemas(business) == tool_schemas()


def test_the_prompt_carries_the_example_business(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEBOOK_BUSINESS_FILE", str(CLINIC))
    business = load_settings().business_model
    for known_line in (False, True):
        prompt = instructions(known_line=known_line, business=business)
        for modality in ("audio", "text"):
            text = prompt.render(modality=modality)
            assert text.startswith(KNOWN_LINE if known_line else COMMON)
            assert "Lee Family Clinic" in text and "12 Harbor Street, Sausalito" in text
            assert "Check-up (30 min, 80); Consultation (20 min, 50); Treatment (60 min, 150)" in (
                text
            )
            assert "Staff: Dr. Lee; Dr. Patel (no Consultation)." in text
            assert "24 hours' notice" in text
            assert "Treatment room" not in text  # rooms are not the caller's choice
            assert "Before fetch_slots ask which service and whether they want someone" in text
            assert "only what is here, else say you don't know" in text
            for entry in business.faq:
                assert f"{entry.question} {entry.answer}" in text
    assert FAQ_TOOL not in json.dumps(call_tool_schemas(business))


def _business(services: int, staff: int, faq: tuple[FaqEntry, ...] = ()) -> Business:
    offered = tuple(Service(f"s{i}", f"Service {i}", 30) for i in range(services))
    people = tuple(
        Resource(
            f"p{i}", f"Person {i}", "staff", frozenset(s.id for s in offered),
            parse_hours("mon-fri 09:00-17:00"),
        )
        for i in range(staff)
    )  # fmt: skip
    return Business(
        rules=load_settings().rules, services=offered, resources=people, name="Shop", faq=faq
    )


@pytest.mark.parametrize(
    ("services", "staff", "asks"),
    [
        (2, 2, "ask which service and whether they want someone in particular; pass service and"),
        (2, 1, "ask which service; pass service to it"),
        (1, 2, "ask whether they want someone in particular; pass staff to it"),
        (1, 1, None),
    ],
)
def test_the_agent_asks_only_about_the_choices_there_are(
    isolated_env: Path, services: int, staff: int, asks: str | None
) -> None:
    text = brief(_business(services, staff))
    assert "Shop" in text
    if asks is None:
        assert "Before fetch_slots" not in text
    else:
        assert f"Before fetch_slots {asks}" in text


# --- the token budget ---------------------------------------------------------------------------


def test_prompt_and_tools_of_5_services_5_staff_and_10_faq_fit_the_budget(
    isolated_env: Path, benchmark_f: ModuleType
) -> None:
    salon = benchmark_f.salon()
    business = salon.business_model
    assert (len(business.services), len(business.staff), len(business.faq)) == (5, 5, 10)
    tokens = benchmark_f.request_tokens(salon, benchmark_f.count)
    assert tokens["total"] <= BUDGET, tokens
    assert business.faq[0].answer in benchmark_f.request_parts(salon)["voice"]  # sent inline
    # Without a business file it stays within the earlier target.
    plain = benchmark_f.request_tokens(load_settings(), benchmark_f.count)
    assert plain["total"] <= benchmark_f.TOKEN_TARGET, plain


def _salon_with_faq(characters: int, times: int = 1) -> Settings:
    """The salon (benchmarks/salon.toml) with its FAQ lines grown to exactly `characters` (a
    longer last answer, worded like the others), then the whole FAQ repeated `times` over."""
    data = tomllib.loads(SALON.read_text())
    faq = data["faq"]
    short = characters - len(faq_lines(tuple(FaqEntry(**entry) for entry in faq)))
    assert 0 <= short < 500
    filler = (" We are happy to help with that; just ask at the desk." * 10)[:short]
    faq[-1]["answer"] += filler[:-1] + "." if filler.endswith(" ") else filler
    data["faq"] = faq * times
    settings = load_settings(**data)
    if times == 1:
        assert len(faq_lines(settings.business_model.faq)) == characters
    return settings


def test_the_faq_is_in_the_prompt_up_to_the_cut_off_and_within_the_budget_there(
    isolated_env: Path, benchmark_f: ModuleType
) -> None:
    at_cut_off = _salon_with_faq(FAQ_INLINE_CHARS)
    parts = benchmark_f.request_parts(at_cut_off)
    assert at_cut_off.business_model.faq[-1].answer in parts["voice"]
    assert FAQ_TOOL not in parts["tools"]
    tokens = benchmark_f.request_tokens(at_cut_off, benchmark_f.count)
    assert tokens["total"] <= BUDGET, tokens


@pytest.mark.parametrize("times", [1, 10])
def test_past_the_cut_off_the_faq_is_searched_and_the_budget_holds_however_long(
    isolated_env: Path, benchmark_f: ModuleType, times: int
) -> None:
    past = _salon_with_faq(FAQ_INLINE_CHARS + 1, times)
    business = past.business_model
    parts = benchmark_f.request_parts(past)
    assert "Where can I park?" not in parts["voice"]
    assert "Other questions about the business: call answer_question." in parts["voice"]
    assert "answer_question's answer" in parts["voice"]
    assert call_tool_schemas(business) == [*tool_schemas(), SCHEMA]
    tokens = benchmark_f.request_tokens(past, benchmark_f.count)
    assert tokens["total"] <= BUDGET, tokens


# --- the FAQ search ------------------------------------------------------------------------------

SALON_FAQ = tuple(
    FaqEntry(entry["question"], entry["answer"])
    for entry in tomllib.loads(SALON.read_text())["faq"]
)


@pytest.mark.parametrize(
    ("question", "first"),
    [
        ("Is there parking nearby?", "Where can I park?"),
        ("Can I pay with Apple Pay?", "What payment do you accept?"),
        ("do you have gift cards", "Do you sell gift cards?"),
        ("I use a wheelchair, can I get in?", "Is the salon wheelchair accessible?"),
        ("What if I'm running late?", "How late can I be?"),
        ("Do you need a patch test before colouring?", "Do you do patch tests for colour?"),
    ],
)
def test_answer_question_finds_the_entry_that_answers(question: str, first: str) -> None:
    found = search(SALON_FAQ, question)
    assert found and found[0].question == first
    assert len(found) <= 3


def test_answer_question_says_when_nothing_matches() -> None:
    assert search(SALON_FAQ, "What is the meaning of life?") == []
    assert answer(SALON_FAQ, "What is the meaning of life?")["entries"] == []
    assert "don't know" in answer(SALON_FAQ, "Is it?")["note"]
    told = answer(SALON_FAQ, "Where do I park the car?")["entries"][0]
    assert told == {"question": "Where can I park?", "answer": SALON_FAQ[0].answer}


def test_a_call_with_a_long_faq_searches_it_in_the_agent(scripted: Any, tmp_path: Path) -> None:
    """`voicebook call --text` for a business whose FAQ is past the cut-off: the prompt has no
    FAQ, the model gets answer_question, and the agent answers it from the file itself."""
    long_faq = "".join(
        f'\n[[faq]]\nquestion = "Question number {i} about our opening policies?"\n'
        f'answer = "Answer number {i}, which is long enough to be worth searching for."\n'
        for i in range(20)
    )
    business_file = tmp_path / "voicebook.toml"
    business_file.write_text(
        CLINIC.read_text()
        + long_faq
        + '\n[[faq]]\nquestion = "Do you have a pharmacy?"\nanswer = "Yes, on the ground floor."\n'
    )
    asked = "Hi, is there a pharmacy in the building?"
    scripted.model.add(
        {
            asked: [
                {"call": FAQ_TOOL, "args": {"question": "pharmacy in the building"}},
                {"say": "Yes, there is one on the ground floor."},
            ]
        }
    )
    env = clean_env(
        {
            **scripted.env(),
            "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'vb.db'}",
            "VOICEBOOK_BUSINESS_FILE": str(business_file),
        }
    )
    done = voicebook("call", "--text", "--json", "--say", asked, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    (lookup,) = document["tool_calls"]
    assert lookup["name"] == FAQ_TOOL and lookup["ok"]
    entries = json.loads(lookup["output"])["entries"]
    assert entries[0] == {
        "question": "Do you have a pharmacy?",
        "answer": "Yes, on the ground floor.",
    }
    request = scripted.model.requests[0]
    assert FAQ_TOOL in [tool["function"]["name"] for tool in request["tools"]]
    system = request["messages"][0]["content"]
    assert "Lee Family Clinic" in system and "pharmacy" not in system
    answered = [m for m in scripted.model.requests[1]["messages"] if m.get("role") == "tool"]
    assert json.loads(answered[-1]["content"])["entries"] == entries


# --- the example business through the CLI -------------------------------------------------------

HELLO = "Hello, I'm Ada Lovelace, my number is 415 555 0131."
BY_SERVICE = "I'd like a consultation, please."
BY_STAFF = "A check-up with Dr. Patel, please."
BOOK_IT = "The first one is fine, book it."
BYE = "That's all, bye."


def _booking_rules(fetch: dict[str, Any], line: str) -> dict[str, list[dict[str, Any]]]:
    return {
        HELLO: [
            {"call": "identify_user", "args": {"phone": "415 555 0131", "name": "Ada Lovelace"}},
            {"say": "Thanks, Ada. Which service would you like, and anyone in particular?"},
        ],
        line: [{"call": "fetch_slots", "args": fetch}, {"say": "I have a few times."}],
        BOOK_IT: [
            {"call": "book_appointment", "args": {"slot_id": "$fetch_slots.slots.0.slot_id"}},
            {"say": "Booked."},
        ],
        BYE: [{"call": "end_conversation", "args": {"recap": "Booked."}}, {"say": "Bye!"}],
    }


def _booked(document: dict[str, Any]) -> dict[str, Any]:
    calls = document["tool_calls"]
    assert [c["name"] for c in calls] == [
        "identify_user", "fetch_slots", "book_appointment", "end_conversation",
    ]  # fmt: skip
    assert all(c["ok"] for c in calls), calls
    offered = json.loads(calls[1]["output"])["slots"][0]
    booked = json.loads(calls[2]["output"])["appointment"]
    assert booked["label"] == offered["label"]
    return booked


def _clinic_prompt_was_sent(scripted: Any) -> None:
    first = scripted.model.requests[0]
    system = first["messages"][0]["content"]
    assert "Lee Family Clinic" in system and "Consultation (20 min, 50)" in system
    assert "Do you take insurance? Yes" in system
    assert [t["function"]["name"] for t in first["tools"]] == [
        s["name"] for s in call_tool_schemas(clinic_settings().business_model)
    ]


def test_call_text_on_the_example_business_books_by_service(scripted: Any, tmp_path: Path) -> None:
    """No --url: the server runs in the command's process with the business file."""
    scripted.model.add(_booking_rules({"service": "Consultation", "limit": 3}, BY_SERVICE))
    env = clean_env(
        {
            **scripted.env(),
            "VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'vb.db'}",
            "VOICEBOOK_BUSINESS_FILE": str(CLINIC),
        }
    )
    lines = [arg for line in (HELLO, BY_SERVICE, BOOK_IT, BYE) for arg in ("--say", line)]
    done = voicebook("call", "--text", "--json", *lines, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    greeting = clinic_settings().business_model.greeting
    assert document["turns"][0]["agent"] == [greeting]
    booked = _booked(document)
    assert booked["service"] == "consultation" and booked["service_name"] == "Consultation"
    assert booked["resource"] == "lee"  # the only doctor who gives consultations
    _clinic_prompt_was_sent(scripted)


def test_call_text_against_voicebook_serve_on_the_example_business_books_by_staff(
    scripted: Any, tmp_path: Path
) -> None:
    """`voicebook serve` with the business file, `voicebook call --text --url` with the same."""
    business = {"VOICEBOOK_BUSINESS_FILE": str(CLINIC)}
    database = {"VOICEBOOK_DATABASE_URL": f"sqlite:///{tmp_path / 'vb.db'}"}
    scripted.model.add(
        _booking_rules({"service": "Check-up", "staff": "Dr. Patel", "limit": 3}, BY_STAFF)
    )
    with running_server({**business, **database}, tmp_path) as server:
        lines = [arg for line in (HELLO, BY_STAFF, BOOK_IT, BYE) for arg in ("--say", line)]
        env = clean_env({**scripted.env(), **business})
        done = voicebook(
            "call", "--text", "--json", "--url", server.url, *lines, env=env, cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    booked = _booked(json.loads(done.stdout))
    assert booked["resource"] == "patel" and booked["resource_name"] == "Dr. Patel"
    assert booked["service"] == "checkup"
    assert booked["label"].endswith("with Dr. Patel")
    _clinic_prompt_was_sent(scripted)


# --- voicebook eval ---------------------------------------------------------------------------


def test_eval_passes_the_example_business_scenarios(scripted: Any, tmp_path: Path) -> None:
    scripted.model.add(rules_from_scenarios(CLINIC_SCENARIOS))
    env = clean_env({**scripted.env(), "VOICEBOOK_BUSINESS_FILE": str(CLINIC)})
    done = voicebook("eval", str(CLINIC_SCENARIOS), "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)
    assert [r["name"] for r in results] == [
        "book a check-up by service",
        "book a treatment with a named doctor",
        "a question the FAQ answers",
        "a question the FAQ does not answer",
    ]
    assert all(r["passed"] for r in results), results
    checks = {c["what"]: c for r in results for c in r["checks"]}
    assert "says 'Blue Shield'" in checks
    booked = checks["book_appointment(slot_id=<from fetch_slots>) ok"]
    assert "appointment.room='treatment-room'" in booked["detail"]
    assert checks["fetch_slots(service='Treatment', staff=<contains Patel>) ok"]["passed"]


def test_the_example_business_scenarios_fail_a_model_that_books_before_a_yes(
    scripted: Any, tmp_path: Path
) -> None:
    """Against a model that identifies and books in the turn of the request, the clinic
    scenarios fail and name each early write."""
    import yaml

    scripted.model.add(rules_from_scenarios(CLINIC_SCENARIOS))
    breaking = yaml.safe_load((REPO / "tests" / "prompt_breaking_model.yaml").read_text())
    scripted.model.add(breaking["rules"])
    env = clean_env({**scripted.env(), "VOICEBOOK_BUSINESS_FILE": str(CLINIC)})
    done = voicebook("eval", str(CLINIC_SCENARIOS), "--json", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout)}
    early = writes_before_yes(results)
    wrote = "wrote before the caller's yes: "
    assert early == {
        ("book a check-up by service", 1, wrote + "identify_user"),
        ("book a check-up by service", 3, wrote + "book_appointment"),
        ("book a treatment with a named doctor", 1, wrote + "identify_user"),
        ("book a treatment with a named doctor", 3, wrote + "book_appointment"),
    }
    assert not results["book a check-up by service"]["passed"]
    assert not results["book a treatment with a named doctor"]["passed"]


def test_eval_fails_a_turn_that_does_not_say_what_it_must(scripted: Any, tmp_path: Path) -> None:
    scenarios = tmp_path / "says.yaml"
    scenarios.write_text(
        "format: voicebook-eval/1\n"
        "scenarios:\n"
        "  - name: a wrong answer about parking\n"
        "    sip_phone: '+1 415 555 0139'\n"
        "    turns:\n"
        "      - user: 'Where can I park?'\n"
        "        says: ['behind the clinic']\n"
        "        model:\n"
        "          - {say: 'Parking is on the street only.'}\n"
    )
    scripted.model.add(rules_from_scenarios(scenarios))
    env = clean_env({**scripted.env(), "VOICEBOOK_BUSINESS_FILE": str(CLINIC)})
    done = voicebook("eval", str(scenarios), "--json", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)
    (check,) = [c for c in result["checks"] if c["what"] == "says 'behind the clinic'"]
    assert not check["passed"] and "parking is on the street only." in check["detail"]
