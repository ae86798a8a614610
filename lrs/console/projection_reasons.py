"""Why the competency projection is not current, in the console's language.

projections/supervisor.py says why in an English sentence (``Freshness.reason``);
the console words each sentence it knows in the page's language, keeping the
values it carries (counts, versions, the error).  A sentence this does not
know (a later version's) is shown as given; a reason that only repeats the
state is the state's word (pure)."""

from __future__ import annotations

import re

from lrs.console.i18n import MESSAGES, projection_state_word

__all__ = ["PREFIX", "KNOWN", "projection_reason"]

# A known sentence of projections/supervisor.py -> the message ``projection_reason_<name>``
# of the console's catalogue, formatted with the sentence's named groups.  The first match wins.
PREFIX = "projection_reason_"
KNOWN: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern, re.S)) for name, pattern in (
    ("frameworks_changed", r"the frameworks changed: rebuilding the projection from the log"),
    ("other_replay", r"another replay of the projection is running"),
    ("stopping", r"the service is stopping"),
    ("behind", r"the projection is (?P<events>\d+) events behind the log, the oldest stored (?P<seconds>\d+) s ago"),
    ("rebuilding_itself", r"this service is rebuilding it from the log by itself: (?P<detail>.*)"),
    ("rebuilds_itself", r"(?P<detail>.*): this service rebuilds it from the log by itself"),
    ("no_auto_rebuild",
     r"(?P<detail>.*) \(LRS_COMPETENCY_AUTO_REBUILD=false: this service does not rebuild it by itself\)"),
    ("rebuild_failed", r"the rebuild failed: (?P<detail>.*)"),
    ("checkpoint_unreadable", r"cannot read the checkpoint: (?P<detail>.*)"),
    ("runner_failed", r"the runner failed: (?P<detail>.*)"),
    ("built_with_other",
     r"it was built with rule version (?P<built_rules>\S+) and frameworks (?P<built_digest>\S+); "
     r"these are (?P<rules>\S+) and (?P<digest>\S+): run `lrs replay competency`"),
))


def projection_reason(reason: str, state: str, language: str) -> str:
    """``reason`` (a ``Freshness.reason``) for the projection in ``state``, in ``language``."""
    if reason == state:
        return projection_state_word(state, language)
    for name, pattern in KNOWN:
        found = pattern.fullmatch(reason)
        if found is not None:
            wordings = MESSAGES[PREFIX + name]
            return wordings.get(language, wordings["en"]).format(**found.groupdict())
    return reason
