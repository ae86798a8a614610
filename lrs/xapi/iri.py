"""The syntax of an IRI (RFC 3987, section 2.2), as one regular expression.

xAPI identifiers (verb, activity, extension keys, ...) are IRIs.  The
expression below is RFC 3987's ``IRI`` rule written out: a scheme, then an
authority (user info, a host that is a registered name, an IPv4 address or
a bracketed IPv6/IPvFuture literal, and a port of digits) or a path, then
an optional query and fragment, where only unreserved characters, the
non-ASCII ``ucschar`` ranges (``iprivate`` too, in the query), delimiters
and well-formed percent-escapes may appear.  So ``http://[::1`` (unclosed
bracket), ``http://example.com:80a/`` (a port that is not digits) and
``http://example.com/%zz`` (a bad escape) are refused, and so are spaces,
controls and ``<>"{}|\\^```.

One expression rather than a parser: msgspec applies it while decoding (no
second pass over the statement), and the JSON Schemas carry it as the
``pattern`` of every IRI.  The libraries that validate RFC 3987 were
measured and do not fit: ``rfc3987-syntax`` (a lark grammar) takes about
12 ms per IRI and refuses ``http://[::1]:8080/``; ``rfc3986``'s IRI
validator accepts bad escapes and spaces.  Per-statement cost:
``bench/iri.py``; deviations from the RFC (for speed): docs/operations.md.
"""

from __future__ import annotations

__all__ = ["IRI_BODY"]

# Each set of allowed characters is written as a negated class (what is NOT
# allowed): the same set as RFC 3987's ranges, but a generator such as
# hypothesis (schemathesis) draws from it quickly, where a class listing the
# ~900,000 ucschar code points took seconds to set up.
# All ASCII but unreserved, sub-delims and ":@/?" (each set below excludes
# some of these too).
_ASCII_EXCLUDED = '\\x00-\\x20"#%<>\\[\\\\\\]^`{|}\\x7f'
_NOT_UCSCHAR = (
    "\\x80-\\x9f"  # C1 controls (ucschar starts at U+00A0)
    "\\ud800-\\udfff"  # surrogates
    "\\ufdd0-\\ufdef\\ufff0-\\uffff"  # noncharacters and specials
    # Of the astral planes only U+E0000-E0FFF (tags, variation selectors) is
    # excluded: each range here is tested for every character, and the last two
    # code points of each plane (noncharacters, never seen in practice), which
    # RFC 3987 also excludes, doubled the cost of a match when listed.
    "\\U000e0000-\\U000e0fff"
)
# iprivate, allowed in the query only.  The supplementary private-use planes
# (15 and 16) are admitted everywhere: a negated class over their 131,068
# code points is what made generation slow, and they occur nowhere in practice.
_PRIVATE_USE = "\\ue000-\\uf8ff"
_NOT_IPRIVATE = ""  # plane 15 and 16 noncharacters, admitted like the others above
_PCT = "%[0-9A-Fa-f]{2}"


def _class(also_excluded: str, *, private: bool = False) -> str:
    """An ipchar-like set as a negated class: ``also_excluded`` removes some
    of ":@/?"; ``private`` admits iprivate."""
    excluded = _ASCII_EXCLUDED + also_excluded + _NOT_UCSCHAR + (_NOT_IPRIVATE if private else _PRIVATE_USE)
    return f"[^{excluded}]"


_IPCHAR = _class("/?")  # iunreserved / sub-delims / ":" / "@" (pct-encoded apart)


def _star(chars: str) -> str:
    """``*( chars / pct-encoded )`` unrolled: no nested quantifier over the same
    characters, so a near miss fails in linear time, and runs of plain
    characters are matched by one class test each."""
    return f"{chars}*(?:{_PCT}{chars}*)*"


def _plus(chars: str) -> str:
    """``1*( chars / pct-encoded )``"""
    return f"(?:{chars}|{_PCT}){_star(chars)}"


_SCHEME = "[A-Za-z][A-Za-z0-9+\\-.]*"
_DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"{_DEC_OCTET}(?:\\.{_DEC_OCTET}){{3}}"
_H16 = "[0-9A-Fa-f]{1,4}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "(?:" + "|".join(
    (
        f"(?:{_H16}:){{6}}{_LS32}",
        f"::(?:{_H16}:){{5}}{_LS32}",
        f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        f"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        f"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    )
) + ")"
_IPVFUTURE = "[vV][0-9A-Fa-f]+\\.[A-Za-z0-9\\-._~!$&'()*+,;=:]+"
_IP_LITERAL = f"\\[(?:{_IPV6}|{_IPVFUTURE})\\]"
_IREG_NAME = _star(_class("/?:@"))
_IUSERINFO = _star(_class("/?@"))
_IHOST = f"(?:{_IP_LITERAL}|{_IREG_NAME})"  # IPv4address is matched as an ireg-name
_HOST_PORT = f"{_IHOST}(?::[0-9]*)?"
# [ iuserinfo "@" ] ihost [ ":" port ], the common case (no user info) first:
# trying user info first would scan every authority twice.
_IAUTHORITY = f"(?:{_HOST_PORT}(?=[/?#]|$)|{_IUSERINFO}@{_HOST_PORT})"
_ISEGMENT = _star(_IPCHAR)
_ISEGMENT_NZ = _plus(_IPCHAR)
_IHIER_PART = (
    f"(?://{_IAUTHORITY}(?:/{_ISEGMENT})*"  # "//" iauthority ipath-abempty
    f"|/(?:{_ISEGMENT_NZ}(?:/{_ISEGMENT})*)?"  # ipath-absolute
    f"|{_ISEGMENT_NZ}(?:/{_ISEGMENT})*"  # ipath-rootless
    ")"  # ipath-empty is not accepted: "scheme:" alone identifies nothing
)
_IQUERY = _star(_class("", private=True))  # ipchar / iprivate / "/" / "?"
_IFRAGMENT = _star(_class(""))  # ipchar / "/" / "?"

# RFC 3987: IRI = scheme ":" ihier-part [ "?" iquery ] [ "#" ifragment ]
IRI_BODY = f"{_SCHEME}:{_IHIER_PART}(?:\\?{_IQUERY})?(?:#{_IFRAGMENT})?"
