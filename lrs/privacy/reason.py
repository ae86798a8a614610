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

or contains one of those values whole (and ``mbox_sha1sum``).  Words are
compared case- and accent-insensitively ("binh" is "Bình", "DUNG" is
"Dũng"): letters and digits, everything else separates them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["MAX_REASON", "ReasonRefused", "check_reason", "fold", "words"]

MAX_REASON = 1000
_WORD = re.compile(r"[^\W_]+")
MIN_WORD = 2


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


def _parts(agent: Mapping[str, Any], names: Iterable[str]) -> list[tuple[str, str, list[str]]]:
    """(what it is, the whole value folded, its words) of each part of the learner that may not be written."""
    parts: list[tuple[str, str, list[str]]] = []
    for name in (agent.get("name"), *names):
        if isinstance(name, str):
            parts.append(("name", fold(name), words(name)))
    mbox = agent.get("mbox")
    if isinstance(mbox, str):
        local = mbox.removeprefix("mailto:").partition("@")[0]
        parts.append(("mbox", fold(mbox.removeprefix("mailto:")), words(local)))
    account = agent.get("account")
    if isinstance(account, Mapping) and isinstance(account.get("name"), str):
        parts.append(("account name", fold(account["name"]), words(account["name"])))
    openid = agent.get("openid")
    if isinstance(openid, str):
        try:
            split = urlsplit(openid)
            personal = " ".join((split.username or "", split.path, split.query, split.fragment))
        except ValueError:
            personal = openid
        parts.append(("openid", fold(openid), words(personal)))
    sha1 = agent.get("mbox_sha1sum")
    if isinstance(sha1, str):
        parts.append(("mbox_sha1sum", fold(sha1), []))
    return parts


def check_reason(reason: str, agent: Mapping[str, Any], names: Iterable[str] = ()) -> str:
    """``reason`` stripped, or :class:`ReasonRefused` when it is empty, too
    long, or names the learner ``agent`` (an Agent as the erasure request
    gives it) or any of ``names`` (the learner's names as their Statements
    give them)."""
    reason = reason.strip()
    if not reason:
        raise ReasonRefused("a reason is required (it is kept in the log)")
    if len(reason) > MAX_REASON:
        raise ReasonRefused(f"the reason is longer than {MAX_REASON} characters")
    folded = fold(reason)
    said = set(words(reason))
    for what, whole, parts in _parts(agent, names):
        if (len(whole) >= MIN_WORD and whole in folded) or any(len(w) >= MIN_WORD and w in said for w in parts):
            raise ReasonRefused(
                f"the reason names the learner (a word of their {what}); it is kept in the log for good, "
                "so write it without the learner's name or identifier (a case number, a date)"
            )
    return reason
