"""Bad input to POST/PUT /xapi/statements: always a 4xx whose JSON names the problem, and nothing stored.

Covers malformed JSON, huge bodies, deep nesting, invalid UTF-8, NaN/Infinity,
duplicate keys, lone surrogates, control characters, a byte order mark,
malformed multipart, and a wrong JSON type at every level of a Statement.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import basic_auth, xapi_headers

STATEMENTS = "/xapi/statements"
JSON = {"Content-Type": "application/json"}
GOOD = (
    b'{"actor": {"objectType": "Agent", "mbox": "mailto:a@example.org"},'
    b' "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},'
    b' "object": {"id": "http://example.org/activity"}'
)


def with_tail(tail: bytes) -> bytes:
    """A valid Statement's text with ``tail`` spliced in before its closing brace."""
    return GOOD + tail + b"}"


async def rejected(client, body: bytes, *, status: int = 400, method: str = "POST", params=None,
                   headers: dict[str, str] | None = None) -> str:
    """Send ``body``; assert ``status`` with a JSON error message; return the message (and path)."""
    response = await client.request(method, STATEMENTS, data=body, params=params or {},
                                    headers={**xapi_headers(), **JSON, **(headers or {})})
    text = await response.text()
    assert response.status == status, (response.status, text[:500])
    assert response.content_type == "application/json", text[:500]
    payload = json.loads(text)
    assert isinstance(payload["error"], str) and payload["error"], payload
    return payload["error"] + " " + (payload.get("path") or "")


async def nothing_stored(client) -> None:
    response = await client.get(STATEMENTS, headers=xapi_headers())
    assert response.status == 200
    assert (await response.json())["statements"] == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "json"),
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"null", "null"),
        (b"42", "object"),
        (b'"a statement"', "object"),
        (b"[]", "no statements"),
        (b"[[]]", "object"),
        (GOOD, "json"),
        (with_tail(b","), "json"),
        (GOOD + b"}}", "trailing"),
        (GOOD + b"} {}", "trailing"),
        (with_tail(b', "result": {"success": tru}'), "json"),
        (with_tail(b", 'context': {}"), "json"),
        (with_tail(b', "result": {"response": "unterminated}'), "json"),
        (with_tail(b' /* comment */'), "json"),
        (b"<statement/>", "json"),
    ],
)
async def test_malformed_json_is_400(client, body, fragment):
    message = await rejected(client, body)
    assert fragment.lower() in message.lower(), message
    await nothing_stored(client)


async def test_huge_body_is_413(client):
    """Bodies over the configured limit (20 MiB by default) are refused before parsing."""
    padding = b'"' + b"x" * (21 * 1024 * 1024) + b'"'
    message = await rejected(client, with_tail(b', "result": {"response": ' + padding + b"}"), status=413)
    assert "large" in message.lower() or "size" in message.lower() or "bytes" in message.lower(), message
    await nothing_stored(client)


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
async def test_deeply_nested_json_is_400_not_a_crash(client, depth):
    """Nesting inside an extension value (the only place arbitrary JSON is allowed) and at the top."""
    nested = b"[" * depth + b"]" * depth
    message = await rejected(client, with_tail(b', "result": {"extensions": {"http://example.org/e": ' + nested + b"}}"))
    assert "nested too deeply" in message, message
    await rejected(client, b"[" * depth + b"]" * depth)
    await rejected(client, b"[" * depth)
    objects = b'{"a":' * depth + b"1" + b"}" * depth
    await rejected(client, with_tail(b', "context": {"extensions": {"http://example.org/e": ' + objects + b"}}"))
    await nothing_stored(client)


async def test_nesting_within_the_limit_is_accepted(client):
    nested = b"[" * 40 + b"]" * 40
    response = await client.post(STATEMENTS, data=with_tail(b', "result": {"extensions": {"http://example.org/e": '
                                                            + nested + b"}}"), headers={**xapi_headers(), **JSON})
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    "raw",
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"caf\xe9", b"\xf8\x88\x80\x80\x80"],
)
async def test_invalid_utf8_is_400(client, raw):
    message = await rejected(client, with_tail(b', "result": {"response": "' + raw + b'"}'))
    assert "utf-8" in message.lower(), message
    await rejected(client, with_tail(b', "result": {"extensions": {"http://example.org/' + raw + b'": 1}}'))
    await nothing_stored(client)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
async def test_nan_and_infinity_are_400(client, literal):
    message = await rejected(client, with_tail(b', "result": {"score": {"raw": ' + literal + b"}}"))
    assert "json" in message.lower(), message
    await rejected(client, with_tail(b', "result": {"extensions": {"http://example.org/e": ' + literal + b"}}"))
    await nothing_stored(client)


async def test_out_of_range_numbers_are_400(client):
    for number in (b"1e999", b"-1e999", b"1.5e400"):
        await rejected(client, with_tail(b', "result": {"score": {"raw": ' + number + b"}}"))
    await nothing_stored(client)


@pytest.mark.parametrize(
    ("tail", "key"),
    [
        (b', "verb": {"id": "http://example.org/other"}', "verb"),
        (b', "result": {"success": true, "success": false}', "success"),
        (b', "result": {"score": {"raw": 1, "raw": 2}}', "raw"),
        (b', "object": {"id": "http://example.org/b"}', "object"),
        (b', "context": {"extensions": {"http://example.org/e": 1, "http://example.org/e": 2}}', "http://example.org/e"),
        (b', "context": {"extensions": {"http://example.org/e": {"k": 1, "k" : 2}}}', "k"),
        (b', "context": {"contextActivities": {"parent": [{"id": "http://example.org/p",'
         b' "definition": {"name": {"en": "a", "en": "b"}}}]}}', "en"),
    ],
)
async def test_duplicate_keys_are_400_naming_the_key(client, tail, key):
    """A key used twice in one object makes the Statement ambiguous (xAPI-Data 2.2.s2.b2)."""
    body = with_tail(tail)
    if key in ("verb", "object"):
        body = GOOD + tail + b"}"
    message = await rejected(client, body)
    assert "duplicate" in message.lower() and key in message, message
    await rejected(client, b"[" + body + b"]")
    statement_id = "6d9d1b57-5b8e-4d3b-9a53-2a6c0a8fbb11"
    await rejected(client, body, method="PUT", params={"statementId": statement_id})
    await nothing_stored(client)


async def test_strings_that_look_like_keys_are_not_duplicates(client):
    """The duplicate check must not mistake ``":`` inside string values for keys."""
    tail = b', "result": {"response": "\\":\\" \\"a\\": 1 :\\"", "extensions": {"http://example.org/e": ":x"}}'
    response = await client.post(STATEMENTS, data=with_tail(tail), headers={**xapi_headers(), **JSON})
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud800x", b"\\ud800\\ud800", b"\\udc00\\ud800"])
async def test_lone_surrogate_escapes_are_400(client, escape):
    message = await rejected(client, with_tail(b', "result": {"response": "a' + escape + b'b"}'))
    assert "surrogate" in message.lower(), message
    await rejected(client, with_tail(b', "result": {"extensions": {"http://example.org/e": "' + escape + b'"}}'))
    await nothing_stored(client)


async def test_a_valid_surrogate_pair_is_accepted(client):
    response = await client.post(STATEMENTS, data=with_tail(b', "result": {"response": "\\ud83d\\udcda"}'),
                                 headers={**xapi_headers(), **JSON})
    assert response.status == 200, await response.text()
    [statement_id] = await response.json()
    got = await client.get(STATEMENTS, params={"statementId": statement_id}, headers=xapi_headers())
    assert (await got.json())["result"]["response"] == "📚"


@pytest.mark.parametrize("char", [b"\x00", b"\x01", b"\x1f", b"\t", b"\n"])
async def test_raw_control_characters_in_strings_are_400(client, char):
    message = await rejected(client, with_tail(b', "result": {"response": "a' + char + b'b"}'))
    assert "control character" in message.lower(), message
    await nothing_stored(client)


async def test_escaped_nul_in_an_account_name_is_400_not_a_database_error(client):
    """U+0000 cannot be stored in an indexed text column: refused where it would end up in an IFI key."""
    tail = b', "context": {"instructor": {"account": {"homePage": "http://example.org", "name": "a\\u0000b"}}}'
    message = await rejected(client, with_tail(tail))
    assert "U+0000" in message, message
    actor = json.dumps({"account": {"homePage": "http://example.org", "name": "a\u0000b"}})
    response = await client.get(STATEMENTS, params={"agent": actor}, headers=xapi_headers())
    assert response.status == 400
    # Elsewhere an escaped NUL is just a character.
    response = await client.post(STATEMENTS, data=with_tail(b', "result": {"response": "a\\u0000b"}'),
                                 headers={**xapi_headers(), **JSON})
    assert response.status == 200, await response.text()


async def test_byte_order_mark_is_400(client):
    message = await rejected(client, b"\xef\xbb\xbf" + GOOD + b"}")
    assert "byte order mark" in message.lower(), message
    await rejected(client, (GOOD + b"}").decode().encode("utf-16"))
    await nothing_stored(client)


async def test_malformed_multipart_is_400(client):
    statement = GOOD + b"}"
    cases = [
        ("multipart/mixed", statement),  # no boundary
        ("multipart/mixed; boundary=abc", statement),  # no parts
        ("multipart/mixed; boundary=abc", b"--abc\r\nContent-Type: application/json\r\n\r\n" + statement),  # no end
        ("multipart/mixed; boundary=abc", b"--abc\r\nContent-Type: text/plain\r\n\r\n" + statement + b"\r\n--abc--\r\n"),
        ("multipart/mixed; boundary=abc",
         b"--abc\r\nContent-Type: application/json\r\n\r\n{\r\n--abc--\r\n"),  # broken JSON part
    ]
    for content_type, body in cases:
        await rejected(client, body, headers={"Content-Type": content_type})
    await nothing_stored(client)


async def test_bad_query_parameters_never_reach_the_store(client):
    """Query parameters with invalid UTF-8, NUL and deep JSON are 400s too."""
    bad = [
        "agent=%ff%fe",
        "agent=%7B%22mbox%22%3A%22mailto%3Aa%40b.c%22%2C%22mbox%22%3A%22mailto%3Ax%40b.c%22%7D",
        "agent=" + "%5B" * 2000,
        "since=%00",
        "statementId=%ff",
    ]
    for query in bad:
        response = await client.get(STATEMENTS + "?" + query, headers=xapi_headers())
        assert 400 <= response.status < 500, (query, response.status, await response.text())
        assert (await response.json())["error"]


@pytest.mark.parametrize("param", ["verb", "activity"])
async def test_nul_in_an_iri_parameter_is_400(client, param):
    response = await client.get(STATEMENTS + f"?{param}=http%3A%2F%2Fexample.org%2F%00", headers=xapi_headers())
    assert response.status == 400, (response.status, await response.text())


@pytest.mark.parametrize("raw", [b"\x00:\x00", b"key\x00:secret",
                                 b"\xff\xfe:x", b":", b"no-colon", b"key:\x00"])
async def test_credentials_with_control_characters_are_401_not_a_crash(client, raw):
    import base64

    header = "Basic " + base64.b64encode(raw).decode()
    response = await client.get(STATEMENTS, headers={"Authorization": header, "X-Experience-API-Version": "1.0.3"})
    assert response.status == 401, (raw, response.status, await response.text())
    assert (await response.json())["error"]
    assert (await client.get(STATEMENTS, headers={"Authorization": basic_auth(), "X-Experience-API-Version": "1.0.3"})).status == 200


# --- a wrong JSON type at every level of a full Statement ------------------------------------

FULL: dict[str, Any] = {
    "id": "fd41c918-b88b-4b20-a0a5-a4c32391aaa0",
    "actor": {"objectType": "Group", "name": "Team", "mbox": "mailto:team@example.org",
              "member": [{"objectType": "Agent", "name": "A", "account": {"homePage": "http://example.org", "name": "a"}}]},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
    "object": {"objectType": "Activity", "id": "http://example.org/q1",
               "definition": {"name": {"en": "Q1"}, "description": {"en": "Question"},
                              "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                              "moreInfo": "http://example.org/q1/info", "interactionType": "choice",
                              "correctResponsesPattern": ["a"], "choices": [{"id": "a", "description": {"en": "A"}}],
                              "extensions": {"http://example.org/x": 1}}},
    "result": {"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "success": True, "completion": True,
               "response": "a", "duration": "PT1M", "extensions": {"http://example.org/x": 1}},
    "context": {"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
                "instructor": {"objectType": "Agent", "openid": "http://example.org/openid"},
                "team": {"objectType": "Group", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"},
                "contextActivities": {"parent": [{"id": "http://example.org/quiz"}], "grouping": [{"id": "http://example.org/c"}]},
                "revision": "1", "platform": "web", "language": "en-US",
                "statement": {"objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"},
                "extensions": {"http://example.org/x": 1}},
    "timestamp": "2024-01-31T12:00:00.000Z",
    "attachments": [{"usageType": "http://example.org/usage", "display": {"en": "file"}, "contentType": "text/plain",
                     "length": 3, "sha2": "a" * 64, "fileUrl": "http://example.org/file.txt"}],
}

WRONG = {str: [1, True, None, [], {}], int: ["1", True, None, [], {}], float: ["0.5", False, None, [], {}],
         bool: ["true", 1, None, [], {}], dict: ["x", 1, True, None, []], list: ["x", 1, False, None, {}]}


def paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "extensions":
                yield path + (key,)
                continue
            yield from paths(child, path + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from paths(child, path + (i,))


def replaced(path: tuple, new: Any) -> Any:
    out = copy.deepcopy(FULL)
    if not path:
        return new
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return out


async def test_the_full_statement_is_valid(client):
    response = await client.post(STATEMENTS, data=json.dumps(FULL), headers={**xapi_headers(), **JSON})
    assert response.status == 200, await response.text()


async def test_a_wrong_type_at_every_level_is_400_naming_the_place(client):
    checked = 0
    for path in paths(FULL):
        original: Any = FULL
        for step in path:
            original = original[step]
        for new in WRONG[type(original)]:
            if path and path[-1] in ("parent", "grouping") and isinstance(new, dict):
                continue  # a single Activity object is allowed there (but {} has no id: still checked below)
            body = json.dumps(replaced(path, new)).encode()
            message = await rejected(client, body)
            named = [str(step) for step in path if isinstance(step, str)]
            if named:  # the message names the property (or, for a language map value, the map)
                assert any(name in message for name in named[-2:]), (path, new, message)
            checked += 1
    for name in ("parent", "grouping"):
        await rejected(client, json.dumps(replaced(("context", "contextActivities", name), {})).encode())
    assert checked > 200
    await nothing_stored(client)
