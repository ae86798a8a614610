"""Linking a person's identifiers: the rules (lrs/identities.py)."""

from __future__ import annotations

import pytest

from lrs.identities import (
    IdentityConflict,
    agent_of_key,
    check_link,
    check_unlink,
    identity_payload,
    parse_identity_payload,
)
from lrs.xapi.identity import ifi_key

P, Q = "mbox:mailto:p@x.org", "mbox:mailto:q@x.org"
A, B = "account:https://a.example|p1", "account:https://b.example|p-1"


def test_link_returns_only_what_changes_and_refuses_each_conflict_naming_it() -> None:
    assert check_link(P, [A, B, A], {}, set()) == [A, B]
    assert check_link(P, [A, B], {A: P}, {P}) == [B]
    with pytest.raises(IdentityConflict, match=f"{A} is already linked to the person {Q}"):
        check_link(P, [A], {A: Q}, {Q})
    with pytest.raises(IdentityConflict, match=f"{P} is itself linked to the person {Q}"):
        check_link(P, [A], {P: Q}, {Q})
    with pytest.raises(IdentityConflict, match="is a person with identifiers of its own"):
        check_link(P, [Q], {A: Q}, {Q})
    with pytest.raises(IdentityConflict, match="is the person itself"):
        check_link(P, [P], {}, set())


def test_unlink_needs_each_identifier_linked_to_that_person() -> None:
    assert check_unlink(P, [B, A], {A: P, B: P}) == [A, B]
    with pytest.raises(IdentityConflict, match=f"{A} is not linked to {P} \\(it is linked to the person {Q}\\)"):
        check_unlink(P, [A], {A: Q})
    with pytest.raises(IdentityConflict, match="linked to no person"):
        check_unlink(P, [A], {})


def test_payload_is_canonical_and_round_trips() -> None:
    payload = identity_payload("link", P, [B, A, B])
    assert payload == identity_payload("link", P, [A, B])
    assert parse_identity_payload(payload) == ("link", P, [A, B])
    with pytest.raises(ValueError, match="unknown identity event op"):
        parse_identity_payload(b'{"op": "merge", "person": "x", "identifiers": []}')


@pytest.mark.parametrize("key", [P, A, B, "mbox_sha1sum:" + "a" * 40, "openid:https://id.example/p"])
def test_agent_of_key_is_the_inverse_of_ifi_key(key: str) -> None:
    assert ifi_key(agent_of_key(key)) == key


def test_a_person_the_roster_names_cannot_become_another_persons_identifier() -> None:
    with pytest.raises(IdentityConflict, match=f"{Q} is a person the roster names"):
        check_link(P, [A, Q], {}, set(), rostered={P, Q})
    assert check_link(P, [A], {}, set(), rostered={P, Q}) == [A]  # the person itself may be rostered
