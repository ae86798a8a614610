"""How long to wait when an LRS asks a client to come back later.

An LRS that sheds load or throttles answers 503 or 429 with ``Retry-After``
(RFC 9110 section 10.2.3: whole seconds, or an HTTP date in any of its three
formats).  That answer is not a failure: nothing was stored, nothing is lost,
and the server said when to try again.  Every client of an LRS in this project
(the import sink, ``lrs forward``, dead-letter replay, ``lrs pull``) decides the
wait with :func:`retry_after_delay`, so they all behave alike:

* the wait asked for, at most ``cap`` seconds (:data:`MAX_RETRY_AFTER_S` by
  default; a far-off date or a huge number must not park a client for days),
* plus up to :data:`JITTER_FRACTION` of it at random, so that clients refused
  together do not all come back in the same instant,
* and it does not use up the client's attempts; the clients bound instead the
  total time spent waiting on one request (:data:`MAX_ASKED_WAIT_S`).
"""

from __future__ import annotations

import email.utils
import re
from datetime import timezone

ASKED_TO_WAIT = frozenset({429, 503})
MAX_RETRY_AFTER_S = 300.0
"""Longest single wait a ``Retry-After`` can impose (before jitter)."""
MAX_ASKED_WAIT_S = 3600.0
"""Longest total a client waits, as asked, on one request before giving up."""
JITTER_FRACTION = 0.1
"""Up to this fraction of the wait is added at random."""

_DELTA_SECONDS = re.compile(r"\d+")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP
    date (IMF-fixdate, RFC 850 or asctime, taken as GMT), relative to ``now``
    (a POSIX timestamp).  None when absent or unreadable; a date in the past
    is 0."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime dates carry no zone; HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def retry_after_delay(
    status: int, value: str | None, now: float, *, cap: float = MAX_RETRY_AFTER_S, draw: float
) -> float | None:
    """Seconds to wait before asking again when a response with ``status`` and
    ``Retry-After: value`` asks the client to come back later; None when it
    does not (another status, or no readable header: an ordinary failure).

    ``draw`` is uniform in [0, 1): the wait is ``min(asked, cap)`` plus
    ``draw * JITTER_FRACTION`` of that, so never more than ``cap * 1.1``."""
    if status not in ASKED_TO_WAIT:
        return None
    asked = parse_retry_after(value, now)
    if asked is None:
        return None
    wait = min(asked, max(0.0, cap))
    return wait + wait * JITTER_FRACTION * draw
