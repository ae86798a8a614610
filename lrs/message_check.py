"""Is a relayed message the log's event?  (pure; docs/contracts.md)

A consumer holds the hashes the log in PostgreSQL has at a message's
position and at the one before it.  The message is the log's event when:

* its position is in the log (a message beyond the log head is forged);
* its ``Lrs-Prev-Hash``, when present, is the log's hash before it;
* SHA-256 over what it carries (lrs.eventlog.hash_with_text: the log's
  previous hash, position, event id, tenant, event type, stored, payload)
  is the log's hash at its position.

A message by reference carries no payload, so its hash cannot be
recomputed; it is the log's at its position when the hash it names is the
log's, and its consumer reads the payload from PostgreSQL.  Because the
expected hashes come from the log and never from the message, a message
cannot bring its own chain: a forged, altered or misplaced message is
refused whatever hashes it claims.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from lrs.eventlog import GENESIS_HASH, hash_with_id_bytes


def needed_positions(positions: Iterable[int]) -> list[int]:
    """The positions whose hashes checking messages at ``positions`` needs."""
    wanted: set[int] = set()
    for position in positions:
        wanted.add(position)
        wanted.add(position - 1)
    return sorted(p for p in wanted if p > 0)


def refusal(
    position: int,
    tenant: str,
    event_type: str,
    payload: bytes,
    event_id: str,
    stored: str,
    prev_hash: str | None,
    by_reference: bool,
    log_hashes: Mapping[int, bytes],
    claimed_hash: str | None = None,
) -> str | None:
    """Why the message is not the log's event (a short reason for metrics
    and logs), or None when it is.  ``event_id`` is the UUID's text and
    ``prev_hash`` and ``claimed_hash`` hex, as the headers carry them.
    ``log_hashes``: position -> hash in the log, for the message's position
    and the one before it."""
    expected = log_hashes.get(position)
    if position < 1 or expected is None:
        return "not_in_log"
    before = GENESIS_HASH if position == 1 else log_hashes.get(position - 1)
    if before is None:
        return "not_in_log"
    try:
        if prev_hash is not None and bytes.fromhex(prev_hash) != before:
            return "prev_hash_mismatch"
        if by_reference:
            if claimed_hash is not None and bytes.fromhex(claimed_hash) != expected:
                return "hash_mismatch"
            return None
        id_bytes = bytes.fromhex(event_id.replace("-", ""))
    except ValueError:
        return "unreadable"
    if len(id_bytes) != 16:
        return "unreadable"
    try:
        actual = hash_with_id_bytes(before, position, id_bytes, tenant, event_type, stored, payload)
    except UnicodeEncodeError:  # a stored text that is not ASCII
        return "hash_mismatch"
    return None if actual == expected else "hash_mismatch"
