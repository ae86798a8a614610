"""Why the competency projection is not current: a stable code, the values it
carries, and the English sentence the API has always given (pure).

The supervisor (projections/supervisor.py) and the status of ``/ready``
(projections/http.py) say why with a :class:`Reason`; the API gives its
``reason_code``, ``reason_values`` and English ``reason`` side by side
(``Freshness.json``), and the console words the code in the page's language
with the values filled in (lrs/console/projection_reasons.py).  A later
version may add codes: a client shows ``reason`` for a code it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENGLISH", "OUTDATED_FOUND", "REASON_CODES", "Reason", "error_values", "reason_json"]

# What differs between the state a projection was built with and what this
# process runs (projections.contract.ProjectionOutdated), with the values
# projection, built_rules, built_digest, rules, digest (digests shown by their first 12 characters).
OUTDATED_FOUND = ("projection {projection!r} was built with rule version {built_rules} and frameworks {built_digest:.12}; "
                  "these are {rules} and {digest:.12}")

# Each code and its English sentence, formatted with the reason's values.
ENGLISH: dict[str, str] = {
    # starting, and the checkpoint is behind the log head (the reason only repeats the state)
    "starting": "starting",
    # rebuilding with the frameworks documents read since (the previous answers are served, marked)
    "frameworks_changed": "the frameworks changed: rebuilding the projection from the log",
    # rebuilding: another process (``lrs replay competency``) holds the replay's lock
    "other_replay": "another replay of the projection is running",
    # stopped: the service shuts down
    "stopping": "the service is stopping",
    # behind: events (int) not applied, the oldest stored age_s (int) seconds ago
    "behind": "the projection is {events} events behind the log, the oldest stored {age_s} s ago",
    # rebuilding: built with other rules or frameworks, and this service rebuilds it (LRS_COMPETENCY_AUTO_REBUILD)
    "rebuilding_itself": "this service is rebuilding it from the log by itself: " + OUTDATED_FOUND,
    # outdated: found while running (another process replayed with other documents); this service rebuilds it
    "rebuilds_itself": OUTDATED_FOUND + ": this service rebuilds it from the log by itself",
    # outdated, and LRS_COMPETENCY_AUTO_REBUILD=false: waits for `lrs replay competency`
    "no_auto_rebuild": OUTDATED_FOUND + ": run `lrs replay {projection}` "
                       "(LRS_COMPETENCY_AUTO_REBUILD=false: this service does not rebuild it by itself)",
    # outdated, seen from a process that does not run the projection (lrs report, HTTP workers)
    "built_with_other": "it was built with rule version {built_rules} and frameworks {built_digest:.12}; "
                        "these are {rules} and {digest:.12}: run `lrs replay competency`",
    # stopped: error_kind (the exception's class) and error (its repr)
    "rebuild_failed": "the rebuild failed: {error}",
    # stopped: the rebuild found the log's hash chain broken at position (int) and swapped nothing in; tried again
    # only after LOG_CHAIN_BROKEN_PAUSE_S (projections/supervisor.py), each try reading the whole log
    "log_chain_broken": "the log's hash chain is broken at position {position}: the projection is not rebuilt "
                        "from an altered log; run `lrs audit verify`",
    "checkpoint_unreadable": "cannot read the checkpoint: {error}",
    "runner_failed": "the runner failed: {error}",
    # /ready only: the projection never started, as the frameworks documents cannot be read (error: why)
    "frameworks_unreadable": "the competency frameworks cannot be read: {error}",
}

REASON_CODES: tuple[str, ...] = tuple(ENGLISH)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why the projection is in its state: ``code`` (one of :data:`REASON_CODES`)
    and the values its sentence carries (numbers and strings, as JSON gives them)."""

    code: str
    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, code: str, **values: Any) -> Reason:
        """The reason ``code`` with ``values``; refuses a code or values its sentence does not take."""
        if code not in ENGLISH:
            raise ValueError(f"unknown projection reason code {code!r}")
        ENGLISH[code].format(**values)  # raises KeyError for a value the sentence needs and lacks
        return cls(code, values)

    @property
    def text(self) -> str:
        """The English sentence."""
        return ENGLISH[self.code].format(**self.values)

    def json(self) -> dict[str, Any]:
        """``reason`` (English), ``reason_code`` and ``reason_values`` as the API gives them."""
        return {"reason": self.text, "reason_code": self.code, "reason_values": dict(self.values)}


def reason_json(why: Reason | None) -> dict[str, Any]:
    """``reason``, ``reason_code`` and ``reason_values`` as the API gives them (None: current, no reason)."""
    return {"reason": None, "reason_code": None, "reason_values": {}} if why is None else why.json()


def error_values(exc: BaseException) -> dict[str, str]:
    """What a reason says of an error: its kind (the class's name) and its repr."""
    return {"error_kind": type(exc).__name__, "error": repr(exc)}
