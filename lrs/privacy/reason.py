"""The reason of an erasure, checked before it goes into the log (pure; docs/privacy.md).

The ``erasure`` event keeps the reason for good, in clear, so it must not
name the learner it erases.  Officials write reasons like "Bình asked on
3 May": Vietnamese names are mostly short tokens, so refusing only the
whole identifier or name let a first name through.  A reason is refused
when one of its words is a word of the learner's

* ``name`` (each word of two letters or more: "Nguyễn Thị Bình"), as the
  request gives it or the learner's Statements do (``names``),
* ``mbox`` local part ("lan.nguyen" in ``mailto:lan.nguyen@example.gov.vn``),
* ``account`` name ("cs1-m"),
* ``openid`` (the words of its path, query and fragment: the host is the provider's),

or contains one of those values whole, as a run of words (and
``mbox_sha1sum``).  Words are compared case- and accent-insensitively
("binh" is "Bình", "DUNG" is "Dũng"): letters and digits, everything else
separates them; only a word written with other accents than the name's is
another word ("văn" of "văn bản" is not "Vân").

A reason must still be writable, so two kinds of word count alone only
where they cannot be anything but the learner:

* a name part that is also an everyday word of a reason (:data:`EVERYDAY`:
  "an" the article, "văn" of "văn bản", a document, "thị" of "chỉ thị", a
  directive, "learner" of a platform's "Learner 4512") counts when it is capitalized, as a name is written ("An
  asked" is refused, "request from an official" is not);
* a number of fewer than :data:`MIN_NUMBER` digits ("13" of the account
  "hn-13") is a decree, a date or a ticket as often as it is the learner's:
  it counts only within the whole value ("hn-13", "hn 13").

A one-word value is not looked for inside other words: the name "An" is
not in "personal".
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["EVERYDAY", "MAX_REASON", "MIN_NUMBER", "ReasonRefused", "check_reason", "fold", "words"]

MAX_REASON = 1000
_WORD = re.compile(r"[^\W_]+")
MIN_WORD = 2
MIN_NUMBER = 4
# Name parts that are also everyday words of a reason, as written (accents kept, case folded):
# English articles and prepositions, the Vietnamese middle names Văn and Thị, and the role words of
# the generic names platforms give ("Learner 4512", "Học viên 12": the number is the learner's).
EVERYDAY = frozenset({"an", "as", "at", "be", "by", "do", "he", "in", "is", "it", "me", "my", "no", "of",
                      "on", "or", "so", "the", "to", "up", "us", "we", "and", "for", "per", "via", "văn", "thị",
                      "learner", "student", "user", "trainee", "participant", "học", "viên", "sinh", "người", "dùng"})


class ReasonRefused(ValueError):
    """The reason cannot be kept; the message (one line) says why without
    repeating the identifier or the name."""


def fold(text: str) -> str:
    """Case- and accent-free: "Đặng Thị Bình" -> "dang thi binh"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words of ``text`` (runs of letters and digits)."""
    return _WORD.findall(fold(text))


def _raw_words(text: str) -> list[str]:
    """The words of ``text`` as written (NFC), not folded."""
    return _WORD.findall(unicodedata.normalize("NFC", text))


def _parts(agent: Mapping[str, Any], names: Iterable[str]) -> list[tuple[str, list[str], list[str]]]:
    """(what it is, the words of the whole value as written, the words of it
    that are personal as written) of each part of the learner that may not be written."""
    parts: list[tuple[str, list[str], list[str]]] = []
    for name in (agent.get("name"), *names):
        if isinstance(name, str):
            parts.append(("name", _raw_words(name), _raw_words(name)))
    mbox = agent.get("mbox")
    if isinstance(mbox, str):
        bare = mbox.removeprefix("mailto:")
        parts.append(("mbox", _raw_words(bare), _raw_words(bare.partition("@")[0])))
    account = agent.get("account")
    if isinstance(account, Mapping) and isinstance(account.get("name"), str):
        parts.append(("account name", _raw_words(account["name"]), _raw_words(account["name"])))
    openid = agent.get("openid")
    if isinstance(openid, str):
        try:
            split = urlsplit(openid)
            personal = " ".join((split.username or "", split.path, split.query, split.fragment))
        except ValueError:
            personal = openid
        parts.append(("openid", _raw_words(openid), _raw_words(personal)))
    sha1 = agent.get("mbox_sha1sum")
    if isinstance(sha1, str):
        parts.append(("mbox_sha1sum", _raw_words(sha1), _raw_words(sha1)))
    return parts


def _everyday(word: str) -> bool:
    return word.casefold() in EVERYDAY


def _accented(word: str) -> bool:
    return fold(word) != word.casefold()


def _other_accents(written: str, part: str) -> bool:
    """Both written with accents, and not the same ones: "văn" (bản) is not
    the name "Vân"; "van" and "VÂN" are."""
    return _accented(written) and _accented(part) and written.casefold() != part.casefold()


def _counts_alone(word: str) -> bool:
    """Whether a word of the learner, met alone in a reason, names them (module doc)."""
    return len(word) >= MIN_WORD and not (word.isdigit() and len(word) < MIN_NUMBER)


def _contains_run(said: list[str], run: list[str]) -> bool:
    n = len(run)
    return n > 0 and any(said[i : i + n] == run for i in range(len(said) - n + 1))


def _named_by(reason_words: list[str], whole: list[str], personal: list[str]) -> str | None:
    """None, or how the reason names this part: "whole" or "word" or "capitalized"."""
    said = [fold(w) for w in reason_words]
    folded_whole = [fold(w) for w in whole]
    if len(whole) > 1 and _contains_run(said, folded_whole):
        return "whole"
    for part in personal:
        if not _counts_alone(part):
            continue
        target = fold(part)
        for written, folded in zip(reason_words, said):
            if folded != target or _other_accents(written, part):
                continue
            if not _everyday(part):
                return "word"
            if written[:1].isupper():
                return "capitalized"
    return None


def check_reason(reason: str, agent: Mapping[str, Any], names: Iterable[str] = (), *, whose: str = "their") -> str:
    """``reason`` stripped, or :class:`ReasonRefused` when it is empty, too
    long, or names the learner ``agent`` (an Agent as the erasure request
    gives it) or any of ``names`` (the learner's names as their Statements
    give them); ``whose`` says in the message whose part it is ("a linked
    identifier's")."""
    reason = reason.strip()
    if not reason:
        raise ReasonRefused("a reason is required (it is kept in the log)")
    if len(reason) > MAX_REASON:
        raise ReasonRefused(f"the reason is longer than {MAX_REASON} characters")
    reason_words = _raw_words(reason)
    for what, whole, personal in _parts(agent, names):
        how = _named_by(reason_words, whole, personal)
        if how is not None:
            taken = ("; an everyday word that is also part of it counts as the name when capitalized"
                     if how == "capitalized" else "")
            raise ReasonRefused(
                f"the reason names the learner (a word of {whose} {what}{taken}); it is kept in the log for good, "
                "so write it without the learner's name or identifier (a case number, a date)"
            )
    return reason
