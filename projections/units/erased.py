"""Erased learners in the unit totals: the programme's policy (pure).

``LRS_ERASED_LEARNERS_IN_TOTALS`` (docs/privacy.md) says whether a learner
erased with ``lrs erase learner`` still counts in the unit totals:

- ``drop`` (the default): from the ``erasure`` event on, the learner is in no
  unit: out of the headcounts, the certified counts, the unit's learner
  lists and the point-in-time members.  Their (pseudonymous) competency
  record stays, as the Statements do.
- ``count``: the learner keeps counting, under their pseudonym, as before
  the erasure.

The policy is applied as the projection meets the erasure events, live and
in a replay alike, so a replay gives the live digest under the same setting.
Changing the setting applies to erasures from then on; ``lrs replay
competency`` applies it to the earlier ones.
"""

from __future__ import annotations

from typing import Mapping

import msgspec

from lrs.privacy.seal import PSEUDONYM_HOME

__all__ = ["DEFAULT_POLICY", "ERASED_POLICY_ENV", "POLICIES", "erased_learner", "erased_policy"]

ERASED_POLICY_ENV = "LRS_ERASED_LEARNERS_IN_TOTALS"
POLICIES = ("drop", "count")
DEFAULT_POLICY = "drop"


class _Erasure(msgspec.Struct):
    pseudonym: str


_decode = msgspec.json.Decoder(_Erasure).decode


def erased_policy(env: Mapping[str, str]) -> str:
    """The policy ``env`` sets; ValueError naming the setting for another value."""
    value = env.get(ERASED_POLICY_ENV, "").strip().lower() or DEFAULT_POLICY
    if value not in POLICIES:
        raise ValueError(f"{ERASED_POLICY_ENV} must be drop or count, got {env.get(ERASED_POLICY_ENV)!r}")
    return value


def erased_learner(payload: bytes) -> str:
    """The learner key (as the roster and the projection know a sealed
    learner) that an ``erasure`` event's payload names."""
    return f"account:{PSEUDONYM_HOME}|{_decode(payload).pseudonym}"
