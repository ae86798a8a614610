"""Result and Score (Data 2.4.5)."""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from lrs.xapi.common import (
    DURATION_EXPECTED,
    EXTENSIONS_MET,
    KNOWN_DURATIONS,
    CheckedDuration,
    Extensions,
    Strict,
    is_duration,
)
from lrs.xapi.errors import field_error

__all__ = ["Score", "Result"]

# int | float keeps the number exactly as sent (5 stays 5, not 5.0).
Number = int | float


class Score(Strict, kw_only=True):
    scaled: Number | UnsetType = UNSET
    raw: Number | UnsetType = UNSET
    min: Number | UnsetType = UNSET
    max: Number | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.scaled is not UNSET and not -1 <= self.scaled <= 1:
            raise field_error(".scaled", "`scaled` must be between -1 and 1 inclusive")
        lo, hi = self.min, self.max
        if lo is not UNSET and hi is not UNSET and not lo < hi:
            raise field_error(".min", "`min` must be less than `max`")
        if self.raw is not UNSET:
            if lo is not UNSET and self.raw < lo:
                raise field_error(".raw", "`raw` must not be less than `min`")
            if hi is not UNSET and self.raw > hi:
                raise field_error(".raw", "`raw` must not be greater than `max`")


class Result(Strict, kw_only=True):
    score: Score | UnsetType = UNSET
    success: bool | UnsetType = UNSET
    completion: bool | UnsetType = UNSET
    response: str | UnsetType = UNSET
    duration: CheckedDuration | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET

    def __post_init__(self) -> None:
        duration = self.duration
        if duration is not UNSET and duration not in KNOWN_DURATIONS and not is_duration(duration):
            raise field_error(".duration", DURATION_EXPECTED)
        if self.extensions is not UNSET:
            next(EXTENSIONS_MET)
