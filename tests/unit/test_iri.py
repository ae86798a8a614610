"""RFC 3987 IRI syntax (lrs.xapi.iri) as the statement decoder applies it."""

from __future__ import annotations

import random
import re
import time

import msgspec
import pytest

from lrs.xapi.common import is_iri
from lrs.xapi.errors import XapiError
from lrs.xapi.iri import IRI_BODY
from lrs.xapi import parse_statement

VALID = [
    "http://example.com/verbs/completed",
    "http://[::1]:8080/a",
    "http://[2001:db8::7]/c=GB?objectClass?one",
    "http://[v1.fe]/",
    "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "http://ex.com/é?q=1#f",
    "http://ví-dụ.vn/khóa-học/bài-1",
    "https://user:pw@host.example:443/p/a/t/h?x=1&y=%20#frag",
    "tag:example.com,2024:x",
    "http://192.168.0.1/x",
    "mailto:a@b.c",
    "http://ex.com/\U00010348",
    "http://example.com/path%2Fx",
    "HTTP://EX.COM",
    "http://ex.com/?\ue000",  # iprivate, allowed in the query only
    "http://example.com:/x",  # an empty port is allowed by the grammar
]
INVALID = [
    "http://[::1",  # unclosed IPv6 bracket
    "http://[::1]]/",
    "http://[1:2:3:4:5:6:7:8:9]/",
    "http://[example.com]/",
    "http://example.com:80a/x",  # bad port
    "http://example.com:-1/",
    "http://example.com/%zz",  # bad percent-escape
    "http://ex.com/%4",
    "http://example.com/a b",
    "http://ex.com/\x00",
    "http://ex.com/<x>",
    'http://ex.com/"',
    "http://ex.com/\\",
    "http://ex.com/\ufdd0",  # a noncharacter
    "http://ex.com/\ue000",  # iprivate outside the query
    "http://ex.com/#a#b",
    "http:",
    "noscheme",
    "1http://x",
    "",
]


@pytest.mark.parametrize("iri", VALID)
def test_valid_iris_are_accepted(iri):
    assert is_iri(iri)


@pytest.mark.parametrize("iri", INVALID)
def test_invalid_iris_are_refused(iri):
    assert not is_iri(iri)


def _statement(verb: str) -> bytes:
    return msgspec.json.encode({
        "actor": {"mbox": "mailto:a@example.org"},
        "verb": {"id": verb},
        "object": {"id": "http://example.org/a"},
    })


@pytest.mark.parametrize("iri", ["http://[::1", "http://example.com:80a/x", "http://example.com/%zz"])
def test_a_statement_with_a_bad_iri_is_400_naming_the_field(iri):
    with pytest.raises(XapiError) as caught:
        parse_statement(_statement(iri), "1.0.3")
    assert caught.value.status == 400
    assert "verb.id" in (caught.value.path or "") and "RFC 3987" in caught.value.message


@pytest.mark.parametrize("size", [5_000, 50_000])
def test_a_near_miss_fails_in_linear_time(size):
    """No catastrophic backtracking: ten times longer costs about ten times more, not a hundred."""
    started = time.process_time()  # this process's CPU: what the matching costs, not how loaded the machine is
    assert not is_iri("http://" + "a" * size + "<")
    assert not is_iri("x:" + "a/" * (size // 2) + "<")
    assert not is_iri("http://x/" + "%41" * (size // 3) + "%4")
    assert time.process_time() - started < size * 2e-5  # 20 us a character: far above linear, far below quadratic


# The possessive form applied and the portable form published must be one language.
_PORTABLE = re.compile(f"^(?:{IRI_BODY})$(?!\\n)")
_PIECES = [":", "/", "//", "?", "#", "[", "]", "%", "%4", "%41", "%zz", "@", "a", "Z", "0", "9", "1:", "::",
           "v1.", "-", ".", "~", "!", " ", "é", "\ue000", "\ufdd0", "\x00", "\n", "<", "80", "[::1]", "[v1.x]"]


@pytest.mark.parametrize("iri", VALID + INVALID)
def test_the_published_form_agrees_on_every_example(iri):
    assert bool(_PORTABLE.match(iri)) == is_iri(iri)


def test_the_applied_and_published_forms_accept_the_same_strings():
    draw = random.Random(3987)
    prefixes = ["http:", "http://", "urn:", "x+y.z-:", "a", ""]
    for _ in range(20_000):
        text = draw.choice(prefixes) + "".join(draw.choices(_PIECES, k=draw.randrange(13)))
        assert bool(_PORTABLE.match(text)) == is_iri(text), text


def test_the_common_http_shortcut_accepts_only_iris_of_the_grammar():
    """The applied form tries a shortcut for plain http(s) IRIs first; strings
    near it (its characters and the ones it leaves to the grammar) get the
    grammar's answer."""
    from lrs.xapi.iri import COMMON_HTTP_IRI

    shortcut = re.compile(f"^(?:{COMMON_HTTP_IRI})$(?!\\n)")
    draw = random.Random(3986)
    pieces = ["a", "Z", "0", "-", ".", "_", "~", "/", "//", ":", "?", "#", "%41", "%", "@", " ", "é", "\n", "[", "80"]
    matched = 0
    for _ in range(20_000):
        text = draw.choice(["http://", "https://", "https:/", "httpss://", "HTTP://"]) + "".join(
            draw.choices(pieces, k=draw.randrange(10)))
        if shortcut.match(text):
            matched += 1
            assert _PORTABLE.match(text), text
        assert bool(_PORTABLE.match(text)) == is_iri(text), text
    assert matched > 200  # the shortcut was exercised (441 with this seed)


@pytest.mark.parametrize("name", ["LANGTAG_PATTERN", "TIMESTAMP_PATTERN"])
def test_patterns_applied_with_a_shortcut_accept_what_their_published_rule_does(name):
    """Language tags and timestamps are applied with a shortcut for their common
    form first; the schemas publish the rule alone: one language."""
    from lrs.xapi import common

    applied = re.compile(getattr(common, name))
    published = re.compile(common.PUBLISHED_PATTERNS[getattr(common, name)])
    assert applied.pattern != published.pattern
    draw = random.Random(5646)
    if name == "LANGTAG_PATTERN":
        starts, pieces = ["", "en", "vi", "EN", "x"], ["-", "a", "Z", "US", "VN", "419", "Latn", "0", "x", "\n", " "]
    else:
        starts, pieces = ["2026-11-01T08:17:00", "2026-11-01T", "20261101T"], \
            ["Z", "z", ".", ",", "5", "00", ":", "+07", "-", "T", "\n", " "]
    accepted = 0
    for _ in range(20_000):
        text = draw.choice(starts) + "".join(draw.choices(pieces, k=draw.randrange(6)))
        assert bool(applied.search(text)) == bool(published.search(text)), text
        accepted += bool(applied.search(text))
    assert accepted > 200  # both sides were exercised


@pytest.mark.parametrize(
    "name, good, bad",
    [
        ("IRI_PATTERN", "http://example.com/a", ["http://[::1", "no scheme"]),
        ("LANGTAG_PATTERN", "en-US", ["en_US", "english-is-long"]),
        ("DURATION_PATTERN", "PT5M", ["5M", "PT"]),
    ],
)
def test_remembered_matches_answer_as_the_pattern_does_and_stay_bounded(name: str, good: str, bad: list[str]) -> None:
    from lrs.xapi import common

    pattern = getattr(common, name)
    check = common._matches_cached(pattern, limit=3)
    for _ in range(2):  # the second time from what was remembered
        assert check(good) and not any(check(b) for b in bad)
    assert check.known == {good}  # refused values are never remembered
    long_value = {"IRI_PATTERN": "http://example.com/", "LANGTAG_PATTERN": "x", "DURATION_PATTERN": "PT"}[name] + (
        "-a1b2c3d4" * 40 if name == "LANGTAG_PATTERN" else "1" * 300 + ("S" if name == "DURATION_PATTERN" else "")
    )
    assert check(long_value) and long_value not in check.known
    for n in range(5):
        assert check(good if n == 0 else {"IRI_PATTERN": f"http://example.com/{n}", "LANGTAG_PATTERN": f"en-{n}{n}{n}",
                                          "DURATION_PATTERN": f"PT{n}S"}[name])
        assert len(check.known) <= 3


@pytest.mark.parametrize("name", ["IRI_PATTERN", "LANGTAG_PATTERN", "DURATION_PATTERN"])
def test_remembered_checks_agree_with_the_full_grammar(name: str) -> None:
    """Property: the remembered check (is_iri, is_language_tag, is_duration)
    accepts exactly what the pattern accepts, whether a value is seen the first
    time, again, or after the memory was emptied."""
    from lrs.xapi import common

    pattern = re.compile(getattr(common, name))
    check = common._matches_cached(getattr(common, name), limit=50)
    draw = random.Random(3987)
    starts, pieces = {
        "IRI_PATTERN": (["http://", "https://", "urn:", "", "x:"],
                        ["a", "Z", "0", "-", ".", "/", ":", "?", "#", "%41", "%", "@", " ", "é", "\n", "[", "]"]),
        "LANGTAG_PATTERN": (["", "en", "vi", "EN", "x", "i-"], ["-", "a", "Z", "US", "VN", "419", "Latn", "0", "x", "\n"]),
        "DURATION_PATTERN": (["P", "PT", "", "p"], ["1Y", "5M", "2D", "3W", "T", "1H", "1.5S", "2,5M", "Y", ".", "\n"]),
    }[name]
    values = [draw.choice(starts) + "".join(draw.choices(pieces, k=draw.randrange(7))) for _ in range(400)]
    accepted = 0
    for _ in range(10):
        for value in draw.sample(values, len(values)):
            expected = pattern.match(value) is not None
            assert check(value) == expected, value
            accepted += expected
    assert 0 < accepted < 4000  # both answers were exercised


def test_statements_accept_a_remembered_field_exactly_when_its_pattern_does() -> None:
    """Property, through the whole decode: a random value as a verb id,
    context activity id, language map key, context language or duration is
    accepted exactly when the published grammar accepts it, whether or not
    it was seen before."""
    import json

    from lrs.xapi import common

    iri = re.compile(common.PUBLISHED_PATTERNS[common.IRI_PATTERN])
    tag = re.compile(common.PUBLISHED_PATTERNS[common.LANGTAG_PATTERN])
    duration = re.compile(common.DURATION_PATTERN)
    draw = random.Random(19)
    iri_pieces = ["a", "Z", "0", "-", ".", "/", ":", "?", "#", "%41", "%", "@", " ", "é", "[", "]"]
    tag_pieces = ["-", "a", "Z", "US", "VN", "419", "Latn", "0", "x", "_"]
    duration_pieces = ["1Y", "5M", "2D", "3W", "T", "1H", "1.5S", "Y", "."]
    outcomes = set()
    for _ in range(600):
        kind = draw.choice(["verb", "parent", "display", "language", "duration"])
        if kind in ("verb", "parent"):
            value = draw.choice(["http://", "https://", "urn:", "", "x:"]) + "".join(draw.choices(iri_pieces, k=draw.randrange(5)))
            expected = iri.match(value) is not None
        elif kind in ("display", "language"):
            value = draw.choice(["", "en", "vi", "x", "i-"]) + "".join(draw.choices(tag_pieces, k=draw.randrange(4)))
            expected = tag.match(value) is not None
        else:
            value = draw.choice(["P", "PT", ""]) + "".join(draw.choices(duration_pieces, k=draw.randrange(4)))
            expected = duration.match(value) is not None
        statement = {
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": value if kind == "verb" else "http://ex.com/v",
                     "display": {value if kind == "display" else "en": "x"}},
            "object": {"id": "http://ex.com/a"},
            "context": {"contextActivities": {"parent": [{"id": value if kind == "parent" else "http://ex.com/p"}]},
                        "language": value if kind == "language" else "en"},
            "result": {"duration": value if kind == "duration" else "PT1S"},
        }
        try:
            parse_statement(json.dumps(statement), "1.0.3")
            accepted = True
        except XapiError:
            accepted = False
        assert accepted == expected, (kind, value)
        outcomes.add((kind, accepted))
    assert len(outcomes) == 10  # every field both accepted and refused
