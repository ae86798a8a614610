"""The erasure's reason is kept in the log for good: it may name no part of
the learner (lrs/privacy/reason.py)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrs.privacy.reason import EVERYDAY, ReasonRefused, check_reason, fold

BINH = {"mbox": "mailto:nguyen.binh@example.gov.vn", "name": "Nguyễn Thị Bình"}


@pytest.mark.parametrize("reason", [
    "Binh asked",  # a first name alone, without its accents
    "bình asked on 3 May",
    "BÌNH asked",
    "request from NGUYEN",
    "Thị's request",  # an everyday word ("chỉ thị") written as a name is
    "asked by nguyen.binh",  # the mbox local part
    "asked by nguyen.binh@example.gov.vn",
])
def test_a_reason_naming_part_of_the_learner_is_refused_without_repeating_it(reason: str) -> None:
    with pytest.raises(ReasonRefused) as refused:
        check_reason(reason, BINH)
    message = str(refused.value)
    assert "names the learner" in message and "\n" not in message
    assert not {"binh", "nguyen", "thi", "example"} & set(fold(message).replace(".", " ").split())


@pytest.mark.parametrize(("agent", "reason", "what"), [
    ({"account": {"homePage": "https://sso.example.gov.vn", "name": "cb-04512"}}, "ticket 04512", "account name"),
    ({"account": {"homePage": "https://sso.example.gov.vn", "name": "cb-04512"}}, "for cb-04512", "account name"),
    ({"openid": "https://id.example.vn/users/dungpham"}, "per Dungpham", "openid"),
    ({"mbox_sha1sum": "ab" * 20}, f"hash {'AB' * 20}", "mbox_sha1sum"),
    ({"mbox": "mailto:lan@example.org"}, "Lan's request", "mbox"),
])
def test_each_kind_of_identifier_is_checked_and_named_in_the_message(agent: dict, reason: str, what: str) -> None:
    with pytest.raises(ReasonRefused, match=f"a word of their {what}"):
        check_reason(reason, agent)


def test_names_from_the_learners_statements_count_too() -> None:
    with pytest.raises(ReasonRefused, match="their name"):
        check_reason("Dũng asked", {"mbox": "mailto:p4@example.gov.vn"}, names=["Phạm Văn Dũng"])


@pytest.mark.parametrize("reason", ["request 2026-117", "Decree 13 request, ticket 88", "yêu cầu xoá dữ liệu số 41"])
def test_a_reason_that_names_nobody_is_kept_stripped(reason: str) -> None:
    assert check_reason(f"  {reason} ", BINH) == reason


def test_empty_and_overlong_reasons_are_refused() -> None:
    with pytest.raises(ReasonRefused, match="required"):
        check_reason("   ", BINH)
    with pytest.raises(ReasonRefused, match="longer than 1000"):
        check_reason("x" * 1001, BINH)


def test_the_provider_part_of_an_openid_is_not_the_learners() -> None:
    assert check_reason("request via https sso", {"openid": "https://sso.example.vn/u/lan"}) == "request via https sso"


_LETTERS = "abcdeghiklmnopqrstuvxyăâđêôơưáàảãạéèẻẽẹíìỉĩịóòỏõọúùủũụýỳỷỹỵ"
name_words = st.text(alphabet=_LETTERS, min_size=2, max_size=7).filter(lambda w: w not in EVERYDAY)


def _shuffled_case_and_accents(word: str, upper: list[bool], strip: bool) -> str:
    if strip:
        word = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).replace("đ", "d")
    return "".join(c.upper() if up else c for c, up in zip(word, upper + [False] * len(word)))


@settings(max_examples=200, deadline=None)
@given(
    name=st.lists(name_words, min_size=1, max_size=4),
    pick=st.integers(min_value=0, max_value=3),
    upper=st.lists(st.booleans(), max_size=7),
    strip=st.booleans(),
    before=st.sampled_from(["", "request: ", "asked by ", "12/5 "]),
    after=st.sampled_from(["", " asked", ", ticket 7", "'s request"]),
)
def test_any_word_of_the_name_in_any_case_or_accents_is_refused(
    name: list[str], pick: int, upper: list[bool], strip: bool, before: str, after: str
) -> None:
    word = name[pick % len(name)]
    reason = before + _shuffled_case_and_accents(word, upper, strip) + after
    with pytest.raises(ReasonRefused):
        check_reason(reason, {"mbox": "mailto:p@example.org", "name": " ".join(name)})


@settings(max_examples=200, deadline=None)
@given(name=st.lists(name_words, min_size=1, max_size=4), number=st.integers(min_value=0, max_value=10**6))
def test_a_case_number_is_never_refused_for_a_name(name: list[str], number: int) -> None:
    reason = f"{number}/2026"  # digits only: no word of a name
    assert check_reason(reason, {"mbox": "mailto:p@example.org", "name": " ".join(name)}) == reason


AN = {"account": {"homePage": "https://sso.example.gov.vn", "name": "hn-13"}, "name": "Trần Văn An"}


@pytest.mark.parametrize("reason", [
    "learner request under Decree 13",  # "13": a short number of the account name, not the learner
    "request from an official, annual review",  # "an" the article; "an" inside "annual"
    "yêu cầu theo văn bản số 12 của Bộ",  # "văn bản" (a document), not the middle name Văn
    "theo chỉ thị số 5",  # "chỉ thị" (a directive)
])
def test_everyday_words_and_short_numbers_that_happen_to_be_name_parts_are_let_through(reason: str) -> None:
    assert check_reason(reason, AN) == reason
    assert check_reason(reason, {**BINH, "name": "Nguyễn Thị An"}) == reason


def test_a_one_word_name_is_not_found_inside_other_words() -> None:
    assert check_reason("annual data request", {"mbox": "mailto:p@example.org", "name": "An"}) == "annual data request"


@pytest.mark.parametrize("reason", [
    "An asked",  # the given name, written as a name is
    "request of Văn An",
    "Trần asked",
    "for hn-13",  # the whole account name
    "ticket hn 13",
    "Request from tran van an",  # the whole name, however written
])
def test_the_same_words_written_as_the_learners_name_are_refused(reason: str) -> None:
    with pytest.raises(ReasonRefused) as refused:
        check_reason(reason, AN)
    assert "\n" not in str(refused.value)


def test_a_refusal_for_an_everyday_word_says_how_it_was_taken() -> None:
    with pytest.raises(ReasonRefused, match="counts as the name when capitalized"):
        check_reason("An asked", AN)


def test_a_word_with_other_accents_than_the_name_is_another_word() -> None:
    van = {"mbox": "mailto:p@example.org", "name": "Trần Thị Vân"}
    assert check_reason("theo văn bản số 12", van) == "theo văn bản số 12"
    for reason in ("Van asked", "VÂN asked", "vân asked"):
        with pytest.raises(ReasonRefused):
            check_reason(reason, van)


@settings(max_examples=100, deadline=None)
@given(word=st.sampled_from(sorted(EVERYDAY)), strip=st.booleans())
def test_an_everyday_word_of_the_name_is_refused_when_capitalized(word: str, strip: bool) -> None:
    written = _shuffled_case_and_accents(word, [True], strip)
    with pytest.raises(ReasonRefused, match="when capitalized"):
        check_reason(f"asked by {written}", {"mbox": "mailto:p@example.org", "name": f"Lê {word}"})
    assert check_reason(f"asked by {word} official", {"mbox": "mailto:p@example.org", "name": f"Lê {word}"})


@pytest.mark.parametrize("agent", [
    {"mbox": "mailto:lan@example.org"}, {"mbox_sha1sum": "ab" * 20}, {"openid": "https://id.example.vn/u/lan"},
    {"account": {"homePage": "https://sso.example.vn/a", "name": "cb|04512"}},
])
def test_an_identifier_linked_to_the_learner_is_read_back_as_the_agent_it_names(agent: dict) -> None:
    from lrs.xapi.identity import agent_of_key, ifi_key

    key = ifi_key(agent)
    assert key is not None and agent_of_key(key) == agent
    assert agent_of_key("not a key") is None


def test_a_generic_name_an_lms_gives_leaves_its_role_word_to_the_reason() -> None:
    """Many platforms name learners "Learner 4512" or "Học viên 12": the role
    word is the reason's too, the number is the learner's."""
    for name in ("Learner 4512", "Học viên 4512", "Student 4512", "User 4512"):
        for reason in ("learner request under Decree 13", "học viên yêu cầu theo Nghị định 13",
                       "student asked via the user portal"):
            assert check_reason(reason, {"mbox": "mailto:p@example.org"}, names=[name]) == reason
        for reason in ("ticket 4512", f"{name} asked"):
            with pytest.raises(ReasonRefused):
                check_reason(reason, {"mbox": "mailto:p@example.org"}, names=[name])
