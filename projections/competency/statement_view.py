"""The parts of a stored statement the competency rules read.

The projection reads every statement of the log, most of which are not
evidence (launched, initialized, experienced, terminated...).  Decoding a
stored statement into these few typed fields skips everything else
(attachments, context activities, extensions other than the cmi5
masteryScore, definitions' names and descriptions) without building it, and the actor is
decoded only for a statement that turns out to be aligned.

Stored statements were validated when they were accepted, so the types
below hold for them; a payload they do not hold for is refused with
``msgspec.ValidationError`` (the runner parks such an event).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw, Struct

__all__ = ["StatementView", "ActivityView", "decode_view", "decode_json_value"]


class DefinitionView(Struct, gc=False):
    type: str | None = None


class ActivityView(Struct, gc=False):
    id: str | None = None
    objectType: str = "Activity"
    definition: DefinitionView | None = None


class VerbView(Struct, gc=False):
    id: str = ""


class ScoreView(Struct, gc=False):
    scaled: float | None = None


class ResultView(Struct, gc=False):
    success: bool | None = None
    completion: bool | None = None
    score: ScoreView | None = None


class ContextView(Struct, gc=False):
    registration: str | None = None
    platform: str | None = None
    extensions: dict[str, Raw] | None = None


class StatementView(Struct, gc=False):
    id: str = ""
    actor: Raw = Raw()  # empty when absent
    verb: VerbView | None = None
    object: ActivityView | None = None
    result: ResultView | None = None
    context: ContextView | None = None
    timestamp: str | None = None
    stored: str | None = None
    authority: Raw = Raw()  # empty when absent


_VIEW = msgspec.json.Decoder(StatementView)
_ANY = msgspec.json.Decoder()


def decode_view(payload: bytes) -> StatementView:
    return _VIEW.decode(payload)


def decode_json_value(raw: Raw | bytes) -> Any:
    return _ANY.decode(raw)
