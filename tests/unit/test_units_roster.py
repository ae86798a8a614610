"""Roster files and bodies: parsing, validation and the messages that point at the problem."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from projections.units.roster import (
    Membership,
    Roster,
    RosterError,
    Unit,
    check_not_linked,
    check_roster,
    parse_csv,
    parse_json,
    parse_learner,
    read_roster,
)

UTC = timezone.utc
MINISTRY = Unit("mic", None, "ministry", "Ministry")
AGENCY = Unit("mic-dt", "mic", "agency", "Agency")


def test_json_roster_with_dates_datetimes_and_open_ends() -> None:
    roster = parse_json(
        b'{"units": [{"id": "mic", "kind": "ministry", "name": "Ministry"},'
        b' {"id": "mic-dt", "parent": "mic", "kind": "agency", "name": "Agency"}],'
        b' "memberships": [{"learner": "account:https://sso.example.gov.vn|0123", "unit": "mic-dt",'
        b' "valid_from": "2025-01-01", "valid_to": "2025-06-30T12:00:00+07:00"},'
        b' {"learner": "mbox:mailto:a@example.gov.vn", "unit": "mic", "valid_from": "2025-02-01T00:00:00", "valid_to": null}]}'
    )
    assert roster.units == (MINISTRY, AGENCY)
    first, second = roster.memberships
    assert first == Membership(
        "account:https://sso.example.gov.vn|0123", "mic-dt",
        datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 30, 5, tzinfo=UTC),
    )
    assert second.valid_from == datetime(2025, 2, 1, tzinfo=UTC) and second.valid_to is None
    assert first.covers(datetime(2025, 6, 30, 4, 59, tzinfo=UTC)) and not first.covers(datetime(2025, 6, 30, 5, tzinfo=UTC))


def test_csv_header_decides_the_kind_and_empty_cells_mean_none() -> None:
    units = parse_csv(["id,parent,kind,name", "mic,,ministry,Ministry", "", "mic-dt,mic,agency,\"Agency, digital\""])
    assert units.units == (MINISTRY, Unit("mic-dt", "mic", "agency", "Agency, digital")) and units.memberships == ()
    members = parse_csv(["learner,unit,valid_from,valid_to", "mbox:mailto:a@example.gov.vn,mic,2025-01-01,"])
    assert members.memberships == (Membership("mbox:mailto:a@example.gov.vn", "mic", datetime(2025, 1, 1, tzinfo=UTC), None),)


def test_every_problem_is_reported_with_its_line() -> None:
    with pytest.raises(RosterError) as caught:
        parse_csv(
            [
                "learner,unit,valid_from,valid_to",
                "someone@example.gov.vn,mic,2025-01-01,",
                "mbox:mailto:a@example.gov.vn,mic,2025-02-30,",
                "mbox:mailto:b@example.gov.vn,mic,2025-03-01,2025-02-01",
                "mbox:mailto:c@example.gov.vn,mic",
            ],
            "roster.csv",
        )
    assert caught.value.problems == [
        "roster.csv line 2: not an actor IFI key: 'someone@example.gov.vn' (expected mbox:mailto:<address>, "
        "mbox_sha1sum:<40 lowercase hex>, openid:<uri> or account:<homePage>|<name>)",
        "roster.csv line 3: expected an ISO 8601 date or date-time, got '2025-02-30'",
        "roster.csv line 4: valid_to 2025-02-01 is not after valid_from 2025-03-01",
        "roster.csv line 5: expected 4 fields, got 2",
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[]", 'roster.json: expected an object with "units" and/or "memberships" lists'),
        (b'{"units": {}}', "roster.json $.units: expected a list"),
        (b'{"units": [{"id": "x", "kind": "province", "name": "X"}]}', "roster.json $.units[0]: kind must be one of ministry, agency, unit, got 'province'"),
        (b'{"units": [{"id": "x y", "kind": "unit", "name": "X"}]}', "roster.json $.units[0]: id must be 1-128 letters, digits, '.', '_', ':' or '-', got 'x y'"),
        (b'{"units": [{"id": "x", "kind": "unit", "name": "X", "head": "y"}]}', "roster.json $.units[0]: unknown field(s) head; allowed: id, kind, name, parent"),
        (b'{"memberships": [{"learner": "mbox:mailto:a@x.org", "unit": "x", "valid_from": 20250101}]}', "roster.json $.memberships[0]: expected an ISO 8601 date or date-time, got 20250101"),
        (b"{", "roster.json: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ],
)
def test_json_problems(body: bytes, problem: str) -> None:
    with pytest.raises(RosterError) as caught:
        parse_json(body, "roster.json")
    assert caught.value.problems == [problem]


@pytest.mark.parametrize(
    "key",
    ["mbox:mailto:a@example.org", "mbox_sha1sum:" + "ab" * 20, "openid:https://id.example.org/a", "account:https://sso.example.gov.vn|a|b"],
)
def test_learner_keys_in_the_ifi_key_encoding(key: str) -> None:
    assert parse_learner(key) == key


@pytest.mark.parametrize("key", ["a@example.org", "mbox:a@example.org", "mbox_sha1sum:" + "AB" * 20, "account:|name", "account:https://x.org", "tel:123"])
def test_other_learner_names_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not an actor IFI key"):
        parse_learner(key)


def test_hierarchy_rules_against_loaded_units() -> None:
    loaded = {"mic": MINISTRY, "mic-dt": AGENCY}
    check_roster(parse_json({"units": [{"id": "d1", "parent": "mic-dt", "kind": "unit", "name": "D1"},
                                      {"id": "d1a", "parent": "d1", "kind": "unit", "name": "D1a"}]}), loaded)
    with pytest.raises(RosterError) as caught:
        check_roster(
            parse_json({"units": [
                {"id": "a2", "kind": "agency", "name": "A2"},
                {"id": "a3", "parent": "mic-dt", "kind": "agency", "name": "A3"},
                {"id": "m2", "parent": "mic", "kind": "ministry", "name": "M2"},
                {"id": "u1", "parent": "nowhere", "kind": "unit", "name": "U1"},
                {"id": "u2", "parent": "mic", "kind": "unit", "name": "U2"},
            ]}),
            loaded,
        )
    assert caught.value.problems == [
        "units[0] a2: an agency needs a parent (ministry)",
        "units[1] a3: an agency's parent must be ministry; 'mic-dt' is an agency",
        "units[2] m2: a ministry's parent must be no parent; 'mic' is a ministry",
        "units[3] u1: parent 'nowhere' is neither loaded nor in this roster",
        "units[4] u2: a unit's parent must be agency or unit; 'mic' is a ministry",
    ]


def test_cycles_among_units_are_refused() -> None:
    loaded = {"mic": MINISTRY, "mic-dt": AGENCY, "u1": Unit("u1", "mic-dt", "unit", "U1"), "u2": Unit("u2", "u1", "unit", "U2")}
    with pytest.raises(RosterError, match=r"the hierarchy has a cycle: u1 -> u2 -> u1"):
        check_roster(parse_json({"units": [{"id": "u1", "parent": "u2", "kind": "unit", "name": "U1"}]}), loaded)


def test_memberships_need_known_units_and_must_not_overlap() -> None:
    loaded = {"mic": MINISTRY, "mic-dt": AGENCY}
    ok = parse_json({"memberships": [
        {"learner": "mbox:mailto:a@x.org", "unit": "mic", "valid_from": "2024-01-01", "valid_to": "2025-01-01"},
        {"learner": "mbox:mailto:a@x.org", "unit": "mic-dt", "valid_from": "2025-01-01"},
    ]})
    check_roster(ok, loaded)
    with pytest.raises(RosterError) as caught:
        check_roster(parse_json({"memberships": [
            {"learner": "mbox:mailto:a@x.org", "unit": "mic", "valid_from": "2024-01-01"},
            {"learner": "mbox:mailto:a@x.org", "unit": "mic-dt", "valid_from": "2025-01-01"},
            {"learner": "mbox:mailto:b@x.org", "unit": "gone", "valid_from": "2025-01-01"},
        ]}), loaded)
    assert caught.value.problems == [
        "memberships[2] mbox:mailto:b@x.org: unit 'gone' is neither loaded nor in this roster",
        "memberships[1] mbox:mailto:a@x.org: overlaps the membership in 'mic' from 2024-01-01T00:00:00+00:00 "
        "(a learner is in one unit at a time; end the earlier one with valid_to)",
    ]


def test_read_roster_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "units.csv").write_text("\ufeffid,parent,kind,name\nmic,,ministry,Ministry\n", encoding="utf-8")
    assert read_roster(tmp_path / "units.csv").units == (MINISTRY,)
    (tmp_path / "roster.txt").write_text("", encoding="utf-8")
    with pytest.raises(RosterError, match="expected a .json or .csv file"):
        read_roster(tmp_path / "roster.txt")


def test_a_learner_linked_to_a_person_as_an_identifier_cannot_be_rostered() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    roster = Roster(memberships=(
        Membership("mbox:mailto:p@x.org", "u", start, None), Membership("mbox:mailto:a@x.org", "u", start, None),
    ))
    check_not_linked(roster, {})
    with pytest.raises(RosterError) as refused:
        check_not_linked(roster, {"mbox:mailto:a@x.org": "mbox:mailto:p@x.org"})
    assert refused.value.problems == [
        "memberships[1] mbox:mailto:a@x.org: is linked to the person mbox:mailto:p@x.org as an identifier; "
        "roster that person, or unlink it first"
    ]


def test_placements_tell_a_learner_who_joined_from_one_who_changed_unit_or_left() -> None:
    from projections.units.store import Placements, placements

    assert placements([(None, "a"), (None, "b")]) == Placements(joined=2)
    assert placements([("a", "b"), ("a", None), (None, "a")]) == Placements(joined=1, moved=1, left=1)
    assert placements([]) + Placements(moved=2) == Placements(moved=2)
