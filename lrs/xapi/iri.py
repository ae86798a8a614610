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

__all__ = ["COMMON_HTTP_IRI", "IRI_BODY", "IRI_BODY_FAST", "iri_body"]

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


def iri_body(*, possessive: bool) -> str:
    """RFC 3987's ``IRI`` rule as a regular expression.

    ``possessive=False``: portable (ECMA 262, as JSON Schema validators and
    generators read it); published in the schemas.  ``possessive=True``: the
    same language, with every repetition possessive and every choice atomic
    (Python 3.11+), so a match never backtracks: the grammar never needs to
    give a character back (each repeated class excludes the character that
    ends it: a segment excludes "/?#", a host ":/?#@", the scheme ":"), so
    this changes what costs time, not what matches.  Without it an IRI of
    80,000 characters that fails at its end took tens of milliseconds
    (bench/iri.py); with it, about a microsecond per hundred characters.
    """
    many = "*+" if possessive else "*"
    opt = "?+" if possessive else "?"

    def atomic(body: str) -> str:
        return f"(?>{body})" if possessive else f"(?:{body})"

    # A fixed pair, not {2}: a counted repeat costs more per escape.
    pct = "%[0-9A-Fa-f][0-9A-Fa-f]" if possessive else _PCT

    def star(chars: str) -> str:
        """``*( chars / pct-encoded )`` unrolled: no nested quantifier over the
        same characters, and runs of plain characters matched by one class
        test each."""
        return f"{chars}{many}(?:{pct}{chars}{many}){many}"

    def plus(chars: str) -> str:
        """``1*( chars / pct-encoded )``"""
        return f"(?:{chars}|{pct}){star(chars)}"

    ipchar = _class("/?")  # iunreserved / sub-delims / ":" / "@" (pct-encoded apart)
    scheme = f"[A-Za-z][A-Za-z0-9+\\-.]{many}"
    # The literal is short (at most ~45 characters): its alternatives may backtrack, boundedly.
    ip_literal = f"\\[(?:{_IPV6}|{_IPVFUTURE})\\]"
    if possessive:
        ip_literal = atomic(ip_literal)
    ireg_name = star(_class("/?:@"))
    iuserinfo = star(_class("/?@"))
    ihost = f"(?:{ip_literal}|{ireg_name})"  # IPv4address is matched as an ireg-name
    host_port = f"{ihost}(?::[0-9]{many}){opt}"
    # [ iuserinfo "@" ] ihost [ ":" port ], the common case (no user info) first:
    # trying user info first would scan every authority twice.
    iauthority = atomic(f"{host_port}(?=[/?#]|$)|{iuserinfo}@{host_port}")
    isegment = star(ipchar)
    isegment_nz = plus(ipchar)
    segments = f"(?:/{isegment}){many}"  # *( "/" isegment )
    if possessive:
        # The same strings as one run: ipchar, "/" and escapes in any order
        # (a path of 80,000 slashes is then one class run, not 80,000 loops).
        segments = star(_class("?"))
    ihier_part = atomic(
        f"//{iauthority}{'(?:/' + segments + ')?+' if possessive else segments}"  # "//" iauthority ipath-abempty
        f"|/(?:{isegment_nz}{segments}){opt}"  # ipath-absolute
        f"|{isegment_nz}{segments}"  # ipath-rootless
    )  # ipath-empty is not accepted: "scheme:" alone identifies nothing
    iquery = star(_class("", private=True))  # ipchar / iprivate / "/" / "?"
    ifragment = star(_class(""))  # ipchar / "/" / "?"
    # RFC 3987: IRI = scheme ":" ihier-part [ "?" iquery ] [ "#" ifragment ]
    return f"{scheme}:{ihier_part}(?:\\?{iquery}){opt}(?:#{ifragment}){opt}"


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

# The IRIs most statements carry (verbs, activity types and ids): http or
# https, a host of letters, digits, dots and hyphens, a path of unreserved
# characters and slashes, nothing else.  Each is an IRI of the grammar above
# (a reg-name and segments of unreserved characters), so trying this first
# changes no answer, only the time: a third less per IRI (bench/iri.py).
# Anything else, or more (a query, an escape, a port), goes to the grammar.
COMMON_HTTP_IRI = "https?+://[A-Za-z0-9.\\-]++(?:/[A-Za-z0-9._~/\\-]*+)?+"

# Published (JSON Schema, OpenAPI) and applied (msgspec, is_iri): one language.
IRI_BODY = iri_body(possessive=False)
IRI_BODY_FAST = f"{COMMON_HTTP_IRI}$(?!\\n)|{iri_body(possessive=True)}"
