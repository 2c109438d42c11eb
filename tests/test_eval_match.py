"""The argument matchers of `voicebook eval` scenarios (voicebook.agent.eval_match), as units:
a model that follows the prompt spells numbers and picks slots its own way, and an expectation
must accept exactly that and nothing else."""

from __future__ import annotations

import pytest

from voicebook.agent.eval_match import check_matcher, describe, mismatch, offered

SLOTS = {
    "fetch_slots": {"slots": [{"slot_id": "s1"}, {"slot_id": "s2"}]},
    "book_appointment": {"error": "slot_taken", "alternatives": [{"slot_id": "s3"}]},
}


@pytest.mark.parametrize("spelling", ["415 555 0101", "(415) 555-0101", "+1 415-555-0101"])
def test_a_phone_matches_any_spelling_of_the_same_number(spelling: str) -> None:
    assert mismatch({"phone": {"phone": "+14155550101"}}, {"phone": spelling}, {}, "US") is None


@pytest.mark.parametrize("given", ["415 555 0102", "415 555 01", None, 4155550101])
def test_a_phone_refuses_another_or_no_number(given: object) -> None:
    problem = mismatch({"phone": {"phone": "+14155550101"}}, {"phone": given}, {}, "US")
    assert problem is not None and "is not the number +14155550101" in problem


def test_from_fetch_slots_is_any_slot_the_newest_fetch_offered() -> None:
    expected = {"slot_id": {"from": "fetch_slots"}}
    assert mismatch(expected, {"slot_id": "s2"}, SLOTS, "US") is None
    assert mismatch(expected, {"slot_id": "made-up"}, SLOTS, "US") == (
        "slot_id='made-up' is not one fetch_slots offered"
    )
    assert mismatch(expected, {"slot_id": "s1"}, {}, "US") is not None  # nothing fetched yet


def test_from_a_path_walks_every_item() -> None:
    path = "book_appointment.alternatives.*.slot_id"
    assert offered(path, SLOTS) == ["s3"]
    assert mismatch({"slot_id": {"from": path}}, {"slot_id": "s1"}, SLOTS, "US") is not None


def test_contains_and_plain_values() -> None:
    assert mismatch({"staff": {"contains": "patel"}}, {"staff": "Dr. Patel"}, {}, "US") is None
    assert mismatch({"staff": {"contains": "Lee"}}, {"staff": "Dr. Patel"}, {}, "US") is not None
    assert mismatch({"limit": 3}, {"limit": 3}, {}, "US") is None
    assert mismatch({"limit": 3}, {"limit": 4}, {}, "US") == "limit=4, not 3"


def test_a_matcher_the_runner_cannot_apply_is_refused_when_read() -> None:
    with pytest.raises(ValueError, match="say a path"):
        check_matcher({"from": "somewhere"})
    with pytest.raises(ValueError, match="needs a text"):
        check_matcher({"phone": 4155550101})
    check_matcher({"from": "retrieve_appointments"})
    assert describe({"from": "fetch_slots"}) == "<from fetch_slots>"
    assert describe("Check-up") == "'Check-up'"
