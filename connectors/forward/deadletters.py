"""Reading and replaying the dead-letter stream of ``lrs forward``.

Parked statements stay in LRS_FORWARD_DLQ (``schemas/nats/forward-dlq.json``)
until a replay delivers them: each one the target accepts is deleted from the
stream; one refused again stays, and the new refusal is reported.  They are
parked as stored (sealed identities stay sealed in NATS, where an erasure
cannot reach) and opened, as the forwarder opens them, when they are replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Collection

import msgspec
import nats.js.errors

from connectors.forward.definitions import DEAD_LETTER_STREAM
from connectors.forward.model import DeadLetter, dead_letter_from_message, dead_letter_subject, outgoing_statement
from connectors.forward.opening import OpenStored
from connectors.framework.model import Rejection
from connectors.framework.sink import LrsSink, Outgoing

ALL_FORWARDERS = "lrs.forward.dlq.>"


async def dead_letters(js: Any, name: str | None = None, sequences: Collection[int] | None = None
                       ) -> AsyncIterator[DeadLetter]:
    """The parked statements of forwarder ``name`` (every forwarder when None),
    oldest first, one at a time (memory stays flat whatever the stream holds)."""
    subject = dead_letter_subject(name) if name else ALL_FORWARDERS
    try:
        await js.stream_info(DEAD_LETTER_STREAM)
    except nats.js.errors.NotFoundError:
        return
    sequence = 1
    wanted = sorted(set(sequences)) if sequences is not None else None
    while True:
        if wanted is not None:
            if not wanted:
                return
            sequence = wanted.pop(0)
        try:
            raw = await js.get_msg(DEAD_LETTER_STREAM, seq=sequence, subject=subject, next=wanted is None)
        except nats.js.errors.NotFoundError:
            if wanted is None:
                return
            continue
        if wanted is not None and name and raw.subject != subject:
            continue  # that sequence belongs to another forwarder
        yield dead_letter_from_message(raw.seq, raw.subject, raw.headers, raw.data or b"")
        sequence = raw.seq + 1


@dataclass(slots=True)
class ReplayResult:
    replayed: int = 0
    rejected: list[tuple[DeadLetter, Rejection]] = field(default_factory=list)


async def replay(js: Any, sink: LrsSink, name: str | None = None, sequences: Collection[int] | None = None,
                 batch_size: int = 100, *, open_stored: OpenStored) -> ReplayResult:
    """POST parked statements to the target again, opened by ``open_stored``
    (connectors.forward.opening); delete those it accepts.  Raises the sink's
    errors when the target is down or refuses the credentials, and
    :class:`connectors.forward.opening.CannotOpen` when sealed statements
    cannot be opened (what was replayed before stays replayed)."""
    result = ReplayResult()
    batch: list[DeadLetter] = []

    async def flush() -> None:
        refused: dict[str, Rejection] = {}
        outgoing = []
        for letter, payload in zip(batch, await _opened(batch, open_stored)):
            statement = _statement(payload)
            if statement is None:
                refused[str(letter.sequence)] = Rejection(letter.statement_id, str(letter.sequence), 0,
                                                          "not a JSON statement object")
            else:
                outgoing.append(Outgoing(outgoing_statement(statement), str(letter.sequence)))
        if outgoing:
            outcome = await sink.send(outgoing)
            refused.update((rejection.ref, rejection) for rejection in outcome.rejected)
        for letter in batch:
            rejection = refused.get(str(letter.sequence))
            if rejection is not None:
                result.rejected.append((letter, rejection))
            else:
                await js.delete_msg(DEAD_LETTER_STREAM, letter.sequence)
                result.replayed += 1
        batch.clear()

    async for letter in dead_letters(js, name, sequences):
        batch.append(letter)
        if len(batch) >= batch_size:
            await flush()
    if batch:
        await flush()
    return result


async def _opened(letters: list[DeadLetter], open_stored: OpenStored) -> list[bytes]:
    """The letters' payloads opened, one call of the opener per tenant."""
    payloads = [letter.payload for letter in letters]
    by_tenant: dict[str, list[int]] = {}
    for index, letter in enumerate(letters):
        by_tenant.setdefault(letter.tenant, []).append(index)
    for tenant, indexes in by_tenant.items():
        for index, payload in zip(indexes, await open_stored(tenant, [payloads[i] for i in indexes])):
            payloads[index] = payload
    return payloads


def _statement(payload: bytes) -> dict[str, Any] | None:
    try:
        document = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    return document if isinstance(document, dict) else None
