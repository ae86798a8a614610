"""A learner answer as officials see it (projections/units/display.py,
shown_learner_view): the identifiers in clear beside the projection's keys,
nothing in clear once erased."""

from __future__ import annotations

from typing import Any

from projections.units.display import Shown, learner_view_keys, shown_learner_view

PERSON, LINKED = "account:https://lrs.invalid/pseudonym|" + "a" * 32, "account:https://lrs.invalid/pseudonym|" + "b" * 32
LAN, LAN_LMS = "mbox:mailto:lan@example.org", "account:https://lms.example|lan-1"


def view() -> dict[str, Any]:
    return {"learner": "whatever the query echoed", "person": PERSON, "identifiers": [PERSON, LINKED],
            "merged": [LINKED], "status": "known"}


def test_the_keys_a_learner_answer_names() -> None:
    assert learner_view_keys(view(), LINKED) == [LINKED, PERSON, LINKED]


def test_identifiers_are_shown_in_clear_with_the_keys_beside_them() -> None:
    shown = {PERSON: Shown(PERSON, LAN, False), LINKED: Shown(LINKED, LAN_LMS, False)}
    answer = shown_learner_view(view(), LINKED, LINKED, shown)
    assert (answer["learner"], answer["key"], "erased" in answer) == (LAN_LMS, LINKED, False)
    assert (answer["person"], answer["person_key"]) == (LAN, PERSON)
    assert (answer["identifiers"], answer["identifier_keys"]) == ([LAN, LAN_LMS], [PERSON, LINKED])
    assert (answer["merged"], answer["merged_keys"]) == ([LAN_LMS], [LINKED])


def test_asked_by_a_clear_identifier_it_is_echoed_even_when_nothing_opens() -> None:
    shown = {PERSON: Shown(PERSON, None, False), LINKED: Shown(LINKED, None, False)}
    answer = shown_learner_view(view(), LAN_LMS, LINKED, shown)
    assert (answer["learner"], answer["person"], answer["merged"]) == (LAN_LMS, None, [LAN_LMS])


def test_an_erased_learner_shows_nothing_in_clear_even_the_identifier_asked_for() -> None:
    shown = {PERSON: Shown(PERSON, None, True), LINKED: Shown(LINKED, None, True)}
    for asked in (LAN_LMS, LINKED, LINKED.replace("pseudonym", "erased")):
        answer = shown_learner_view(view(), asked, LINKED, shown)
        assert answer["erased"] is True
        assert [answer["learner"], answer["person"], *answer["identifiers"], *answer["merged"]] == [None] * 5
        assert "lan" not in str(answer)


def test_in_clear_every_key_is_its_own_identifier() -> None:
    clear_view = {"person": LAN, "identifiers": [LAN, LAN_LMS], "merged": [LAN_LMS]}
    shown = {LAN: Shown(LAN, LAN, False), LAN_LMS: Shown(LAN_LMS, LAN_LMS, False)}
    answer = shown_learner_view(clear_view, LAN_LMS, LAN_LMS, shown)
    assert (answer["person"], answer["identifiers"], answer["merged"]) == (LAN, [LAN, LAN_LMS], [LAN_LMS])
    assert (answer["person_key"], answer["merged_keys"]) == (LAN, [LAN_LMS])
