"""State of the competency projection, as plain immutable values.

A learner is named by the canonical key of the actor's inverse functional
identifier (:func:`lrs.xapi.identity.ifi_key`): ``mbox:mailto:a@example.org``,
``mbox_sha1sum:<lowercase hex>``, ``openid:<uri>`` or
``account:<homePage>|<name>``.

Times are UTC ISO 8601 strings with microseconds and a ``Z``
(``2025-03-01T08:00:00.000000Z``), so they sort as text.  Statement ids are
lowercase UUID strings.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Literal

from msgspec import Struct

__all__ = [
    "RULE_VERSION",
    "EVIDENCE_ORDER",
    "Status",
    "Evidence",
    "new_evidence",
    "LevelAttainment",
    "CompetencyState",
    "ProgramCertification",
    "LearnerState",
    "StatementEvidence",
    "StatementVoided",
    "LearnerEvent",
]

# Bumped whenever the rules (policy.py names them) change what a state would be, or
# the stored form of a state changes (codec.py); a projection built under
# another rule version is rebuilt by replay.  2: the compact stored form.
# 3: only statements about the aligned activity itself are evidence (not
# those naming it as parent or category, nor ``answered`` statements and
# interactions); evidence keeps the masteryScore that judged it, the
# statement's own one and the platform that sent it.
RULE_VERSION = 3

Status = Literal["not_started", "in_progress", "mastered"]

# How a learner's evidence is kept sorted (Evidence.order), as a sort key:
# the order in which Evidence compares (its first five fields).
EVIDENCE_ORDER = attrgetter("timestamp", "statement_id", "competency", "level_rank", "activity")


class _Value(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Immutable, built from its fields, so never part of a reference cycle:
    the cyclic garbage collector need not track it (gc=False), which a
    replay holding millions of them in memory notices."""


class Evidence(_Value, frozen=True, kw_only=False, forbid_unknown_fields=True, gc=False, order=True):
    """What one statement says about one competency (at one level).

    Evidence compares by its fields in order (``order=True``), so its first
    five are the evidence order (:data:`EVIDENCE_ORDER`): a learner's
    evidence is sorted and merged by comparing the Structs themselves, in C,
    instead of building a key tuple of five attributes per item (about 0.2 µs
    each through ``attrgetter``).  Two pieces of a state's evidence never
    tie on those five (one statement's evidence is one per competency, level
    and activity, and a competency's levels have distinct ranks), so the
    fields after them never decide the order.

    Unlike the other values, its fields may also be given by position (in
    the order below): :data:`new_evidence` builds every piece of evidence
    a statement or a stored state holds that way."""

    timestamp: str  # the statement's timestamp (UTC, normalised)
    statement_id: str
    competency: str  # competence IRI
    level_rank: int  # 1 = lowest level of the framework, 0 = no level
    activity: str  # the aligned activity (object, parent or category)
    level: str | None  # level code; None when aligned to the competence alone
    source: Literal["objective", "alignment", "equivalent"]
    verb: str
    registration: str | None
    passed: bool | None  # judged: True passed, False failed, None not judged
    completed: bool
    score: float | None  # result.score.scaled
    move_on: str  # cmi5 moveOn criterion that decides mastery
    mastery_score: float | None = None  # the masteryScore that judged the score (table's, else statement's)
    statement_mastery_score: float | None = None  # the statement's own cmi5 masteryscore extension
    platform: str | None = None  # context.platform, else the authority's IFI key
    stored: str = ""  # when the LRS stored the statement (UTC, normalised): the "known" clock

    @property
    def mastery_differs(self) -> bool:
        """The statement carries a masteryScore other than the one that judged it
        (the alignment table's overrides it)."""
        return (
            self.statement_mastery_score is not None
            and self.mastery_score is not None
            and abs(self.statement_mastery_score - self.mastery_score) > 1e-9
        )

    @property
    def order(self) -> tuple[str, str, str, int, str]:
        return EVIDENCE_ORDER(self)  # type: ignore[no-any-return]


# ``Evidence`` of all seventeen fields by position, in the order of its
# fields: how statements (judgement.py) and stored states (codec.py) build
# it.  By keyword, a call of sixteen or more keyword arguments is compiled
# into one that builds a dict and passes it as ``**kwargs``, which msgspec
# then matches name by name; branch fold's function of fifteen keywords and
# a ``msgspec.structs.replace`` for the two fields most often None took
# 1.5-2.5 µs a call at load 16 where this takes 0.7-1.0 (docs/scaling.md,
# "Live apply's state encode and evidence, branch lag5").
new_evidence = Evidence


class LevelAttainment(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A level of a competency was reached at ``achieved_at`` by these statements."""

    level: str | None
    level_rank: int
    achieved_at: str
    statement_ids: tuple[str, ...]  # sorted
    # when the LRS first held evidence reaching the level (by the statements'
    # stored times): the "known" clock, where achieved_at is the "achieved" one
    known_at: str = ""


class CompetencyState(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    competency: str
    status: Status
    level: str | None  # highest level reached
    best_score: float | None
    latest_score: float | None
    evidence_count: int  # statements that are evidence for this competency
    first_evidence_at: str | None
    last_evidence_at: str | None
    first_mastered_at: str | None
    attainments: tuple[LevelAttainment, ...]  # lowest level first
    rule_version: int = RULE_VERSION


class ProgramCertification(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    program: str
    program_version: str
    earned: bool
    earned_at: str | None
    statement_ids: tuple[str, ...]  # the exact statements that earned it, sorted
    known_at: str | None = None  # when the LRS first held evidence that earns it (stored clock)
    met: tuple[str, ...]  # required competences reached, sorted
    missing: tuple[str, ...]  # required competences not yet reached, sorted
    rule_version: int = RULE_VERSION


class LearnerState(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Everything the projection knows about one learner.

    ``evidence`` is kept (sorted) so a late or voided statement refolds the
    affected competencies from their evidence; ``voided`` remembers voided
    statement ids so a voided statement that arrives again stays out.
    """

    learner: str
    evidence: tuple[Evidence, ...] = ()
    voided: tuple[str, ...] = ()
    competencies: dict[str, CompetencyState] = {}
    certifications: dict[str, ProgramCertification] = {}  # by "<iri>|<version>"
    rule_version: int = RULE_VERSION


# -- events the rules fold -----------------------------------------------------


class StatementEvidence(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False, tag="evidence"):
    """A statement about ``learner`` that is evidence for one or more competencies."""

    statement_id: str
    learner: str
    evidence: tuple[Evidence, ...]


class StatementVoided(_Value, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False, tag="voided"):
    """Statement ``target_id`` was voided by statement ``statement_id``."""

    statement_id: str
    target_id: str


LearnerEvent = StatementEvidence | StatementVoided
