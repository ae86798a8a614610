"""The bytes the rules give for a generated log stay what they were.

Replay and live apply are made faster by changing how they compute, never
what: a learner's stored state, its rows and the mismatch rows must be the
same bytes, or the audit digest of a projection rebuilt after an upgrade
would differ from the one before it for no change of rules.  The log below
is generated from a fixed seed (evidence of every kind, statements that are
not evidence, voidings before and after their targets, timestamps with and
without offsets, masteryScores, registrations, platforms, authorities, two
tenants); the digest of what the rules make of it was computed with the
code as it was before the projections were made faster (commit ab6ea44).

A change of the rules (RULE_VERSION) changes these bytes on purpose:
recompute the digest then, with the reason in the commit.  Each value is
hashed with its Structs' fields by name (_by_name), so the order in which a
Struct declares its fields is not part of it: Evidence's order changed in
branch proj-codec (the evidence order first) and this digest is the same
with the code before that change (8011899^1) and after it.  The states are
hashed as values, not as their stored layout, so a change of the stored
format (codec.FORMAT) leaves PINNED as it was: format 3 (branch proj-slim,
competencies folded again on decode, not stored) gives the same PINNED as
format 2 did at ab19a0a (this test run against that checkout), and each
state decodes to itself.  The layouts the audit digest hashes are pinned
apart (PINNED_LAYOUTS), and change with the format on purpose.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

import msgspec

from projections.competency.catalog import load_catalog
from projections.competency.codec import FORMAT, decode_state, encode_state, open_state
from projections.competency.model import RULE_VERSION, LearnerState, StatementVoided
from projections.competency.policy import evolve_many, interpret_stored
from projections.competency.rebuild import LogRebuild
from projections.competency.rows import certification_rows, mismatch_rows, state_rows

CATALOG = load_catalog()
COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills/modules/"
MODULES = [
    "searching", "evaluating-sources", "online-communication", "e-government-services", "office-documents",
    "device-security", "personal-data", "troubleshooting", "using-ai-assistants", "not-aligned",
]
VERBS = [
    "http://adlnet.gov/expapi/verbs/passed", "http://adlnet.gov/expapi/verbs/failed",
    "http://adlnet.gov/expapi/verbs/completed", "https://w3id.org/xapi/adl/verbs/waived",
    "https://w3id.org/xapi/adl/verbs/satisfied", "http://adlnet.gov/expapi/verbs/launched",
    "http://adlnet.gov/expapi/verbs/initialized", "http://adlnet.gov/expapi/verbs/terminated",
    "http://adlnet.gov/expapi/verbs/experienced", "http://adlnet.gov/expapi/verbs/answered",
]
MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
# sha256 of the generated log's states (by name), rows and mismatch rows (see the module's docstring)
PINNED = "f1a398d65ced51cb144c266f25d319628af4708728c8c16eefbad8b857ba45d5"
# sha256 of the states' stored layouts, in format 3 (format 2's: b7b42d86281ac806729cdb9d370cb3bfc4f14caa374aacd4a57562744af1673d)
PINNED_LAYOUTS = "bffa3aff01d39e2930426a324de2f2b72475f877ad451009e54ed0e8b2b515fd"
PINNED_FOR = (3, 3)  # (RULE_VERSION, FORMAT)


def _timestamp(rng: random.Random) -> str:
    day, hour, minute = rng.randrange(1, 29), rng.randrange(24), rng.randrange(60)
    fraction = rng.choice(["", ".5", ".123", ".123456"])
    offset = rng.choice(["Z", "Z", "+00:00", "+07:00", "-03:30", ""])
    return f"2025-{rng.randrange(1, 13):02d}-{day:02d}T{hour:02d}:{minute:02d}:{rng.randrange(60):02d}{fraction}{offset}"


def _statement(rng: random.Random) -> dict[str, Any]:
    learner = rng.randrange(12)
    actor: dict[str, Any] = (
        {"mbox": f"mailto:cs{learner}@agency{learner % 3}.example.gov.vn"} if learner % 4
        else {"account": {"homePage": "https://sso.example.gov.vn", "name": f"u{learner}"}}
    )
    result: dict[str, Any] = {}
    if rng.random() < 0.7:
        if rng.random() < 0.5:
            result["success"] = rng.random() < 0.7
        if rng.random() < 0.4:
            result["completion"] = rng.random() < 0.8
        if rng.random() < 0.6:
            result["score"] = {"scaled": rng.choice([0.2, 0.5, 0.75, 0.8, 0.95, 1.0])}
    body: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "actor": actor,
        "verb": {"id": rng.choice(VERBS)},
        "object": {"objectType": "Activity", "id": COURSE + rng.choice(MODULES)},
        "timestamp": _timestamp(rng),
        "stored": f"2026-01-{rng.randrange(1, 29):02d}T10:00:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}Z",
        "authority": rng.choice([
            {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "client-a"}},
            {"objectType": "Agent", "mbox": "mailto:lms@example.gov.vn"},
        ]),
    }
    if result:
        body["result"] = result
    context: dict[str, Any] = {}
    if rng.random() < 0.4:
        context["registration"] = str(uuid.UUID(int=rng.getrandbits(128))).upper()
    if rng.random() < 0.3:
        context["platform"] = rng.choice(["Moodle", "cmi5 player"])
    if rng.random() < 0.3:
        context["extensions"] = {MASTERY: rng.choice([0.5, 0.8, 0.9])}
    if context:
        body["context"] = context
    return body


def _log(seed: int, size: int) -> list[tuple[int, str, str, bytes]]:
    rng = random.Random(seed)
    bodies: list[tuple[str, dict[str, Any]]] = []
    for _ in range(size):
        tenant = rng.choice(["default", "default", "other"])
        if bodies and rng.random() < 0.08:
            target = rng.choice(bodies)[1]["id"]
            bodies.append((tenant, {
                "id": str(uuid.UUID(int=rng.getrandbits(128))), "actor": {"mbox": "mailto:admin@example.gov.vn"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": target.upper()},
                "timestamp": "2026-02-01T00:00:00Z", "stored": "2026-02-01T00:00:00.000001Z",
            }))
        else:
            bodies.append((tenant, _statement(rng)))
    rng.shuffle(bodies)  # voidings land before and after their targets
    return [(i + 1, t, "statement", msgspec.json.encode(b)) for i, (t, b) in enumerate(bodies)]


def _by_name(value: Any) -> Any:
    """``value`` with each Struct in it as its type's name and its fields
    sorted by name, so that what is hashed does not depend on the order in
    which a Struct declares its fields (only on what they hold)."""
    if isinstance(value, msgspec.Struct):
        fields = sorted((name, _by_name(getattr(value, name))) for name in value.__struct_fields__)
        return (type(value).__name__, fields)
    if isinstance(value, (tuple, list)):
        return type(value)(_by_name(v) for v in value)
    if isinstance(value, dict):
        return {k: _by_name(v) for k, v in value.items()}
    return value


def _digest(log: list[tuple[int, str, str, bytes]]) -> tuple[str, str]:
    """The digest of what the rules make of ``log`` (each state by name,
    whatever its stored layout), and that of the states' stored layouts."""
    sha = hashlib.sha256()
    layouts = hashlib.sha256()

    def add(value: Any) -> None:
        part = value if isinstance(value, bytes) else repr(_by_name(value)).encode()
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)

    for position, tenant, _, payload in log:  # what each statement means, as live apply reads it
        meaning = interpret_stored(payload, CATALOG)
        add((position, meaning))
        if meaning is not None and not isinstance(meaning, StatementVoided):
            add(mismatch_rows(tenant, meaning))
    rebuild = LogRebuild(CATALOG)  # the replay's fold
    for event in log:
        rebuild.add(*event)
    for key in rebuild.prepare():
        folded = rebuild.fold(key)
        add(key)
        add(folded.state)
        layout = open_state(encode_state(folded.state))  # as the audit digest hashes it
        layouts.update(len(layout).to_bytes(8, "big"))
        layouts.update(layout)
        assert decode_state(encode_state(folded.state)) == folded.state
        add(state_rows(folded.tenant, folded.state))
        add(certification_rows(folded.tenant, folded.state))
        # and live apply's: the learner's events a few at a time
        items = rebuild.events[key]
        state = LearnerState(learner=key[1])
        for start in range(0, len(items), 3):
            state = evolve_many(state, items[start:start + 3], CATALOG)
        assert encode_state(state) == encode_state(folded.state)
    add(sorted(rebuild.voiding_rows()))
    add(sorted(rebuild.mismatch_rows(), key=repr))
    add(sorted(rebuild.owner_rows()))
    add(rebuild.failed)
    return sha.hexdigest(), layouts.hexdigest()


def test_the_rules_give_the_same_bytes_for_the_generated_log() -> None:
    assert RULE_VERSION == PINNED_FOR[0], "the rules changed: recompute PINNED"
    assert FORMAT == PINNED_FOR[1], "the stored format changed: recompute PINNED_LAYOUTS"
    assert _digest(_log(19, 1500)) == (PINNED, PINNED_LAYOUTS)


def test_the_generated_log_has_what_the_digest_is_meant_to_cover() -> None:
    log = _log(19, 1500)
    meanings = [interpret_stored(payload, CATALOG) for _, _, _, payload in log]
    evidence = [m for m in meanings if m is not None and not isinstance(m, StatementVoided)]
    rebuild = LogRebuild(CATALOG)
    for event in log:
        rebuild.add(*event)
    states = [rebuild.fold(key).state for key in rebuild.prepare()]
    assert len(evidence) > 300 and any(isinstance(m, StatementVoided) for m in meanings)
    assert any(s.voided for s in states)
    assert any(c.earned for s in states for c in s.certifications.values())
    assert any(a.status == "mastered" for s in states for a in s.competencies.values())
    assert any(e.mastery_differs for m in evidence for e in m.evidence)
    assert any(e.registration for m in evidence for e in m.evidence)
