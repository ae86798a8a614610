"""The pure parts of sealing rosters and identity links (docs/privacy.md):
the event payloads, messages written back in clear, and the policy on
erased learners in the unit totals."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import pytest

from lrs.config import ConfigError, Settings
from lrs.identities import identity_payload, parse_identity_payload
from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX, SealedRefs
from projections.units.erased import erased_learner, erased_policy
from projections.units.history import parse_roster_payload, roster_payloads
from projections.units.roster import Membership, Roster

P1 = PSEUDONYM_KEY_PREFIX + "a" * 32
P2 = PSEUDONYM_KEY_PREFIX + "b" * 32
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_roster_events_carry_the_sealed_keys_of_their_own_learners_only() -> None:
    roster = Roster((), (Membership(P1, "u", START, None), Membership(P2, "u", START, None)))
    [payload] = roster_payloads(roster, {P1: "v1.x", P2: "v1.y", PSEUDONYM_KEY_PREFIX + "c" * 32: "v1.z"})
    assert msgspec.json.decode(payload)["sealed"] == {P1: "v1.x", P2: "v1.y"}
    assert parse_roster_payload(payload) == roster  # the projection reads it as before
    assert b"sealed" not in roster_payloads(roster)[0]  # not sealed: the payload of before


def test_identity_events_carry_sealed_keys_and_read_as_before() -> None:
    payload = identity_payload("link", P1, [P2], {P1: "v1.x", P2: "v1.y"})
    assert parse_identity_payload(payload) == ("link", P1, [P2])
    assert msgspec.json.decode(payload)["sealed"] == {P1: "v1.x", P2: "v1.y"}
    assert identity_payload("link", "mbox:mailto:a@b.c", ["mbox:mailto:d@b.c"]) == (
        b'{"identifiers":["mbox:mailto:d@b.c"],"op":"link","person":"mbox:mailto:a@b.c"}'
    )  # events written before sealing keep their form


def test_messages_name_the_callers_keys_in_clear() -> None:
    refs = SealedRefs(keys={"mbox:mailto:lan@x.vn": P1})
    assert refs.reveal(f"{P1} is already linked to the person {P2}") == f"mbox:mailto:lan@x.vn is already linked to the person {P2}"
    assert refs.key("mbox:mailto:lan@x.vn") == P1 and refs.key(P2) == P2


@pytest.mark.parametrize("value, policy", [(None, "drop"), ("", "drop"), ("count", "count"), (" DROP ", "drop")])
def test_the_erased_learners_policy(value: str | None, policy: str) -> None:
    env = {} if value is None else {"LRS_ERASED_LEARNERS_IN_TOTALS": value}
    assert erased_policy(env) == policy
    assert Settings.from_env(env).erased_learners_in_totals == policy


def test_an_unknown_policy_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="LRS_ERASED_LEARNERS_IN_TOTALS must be drop or count"):
        erased_policy({"LRS_ERASED_LEARNERS_IN_TOTALS": "keep"})
    with pytest.raises(ConfigError, match="LRS_ERASED_LEARNERS_IN_TOTALS must be drop or count"):
        Settings.from_env({"LRS_ERASED_LEARNERS_IN_TOTALS": "keep"})


def test_the_erased_learner_is_known_by_the_pseudonym_key_the_roster_holds() -> None:
    assert erased_learner(b'{"pseudonym":"' + b"a" * 32 + b'","reason":"r"}') == P1
