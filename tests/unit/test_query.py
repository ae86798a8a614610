"""GET /statements parameter parsing and ``more`` cursors."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrs.ingest.cursor import decode_cursor, encode_cursor
from lrs.ingest.query import StatementFetch, StatementQuery, more_token, parse_statement_query
from lrs.xapi.errors import NotFoundError, XapiError

REG = "ec531277-b57b-4c15-8d91-d292c5b2b8f7"


def parse(params, default_limit=100, max_limit=500):
    return parse_statement_query(params, default_limit=default_limit, max_limit=max_limit)


def rejects(params, name, status=400):
    with pytest.raises(XapiError) as info:
        parse(params)
    assert info.value.status == status
    assert info.value.path == name, info.value
    return info.value


# -- filtered queries -------------------------------------------------------------


def test_no_parameters_gives_defaults():
    assert parse({}) == StatementQuery(limit=100)


def test_all_filters():
    q = parse(
        {
            "agent": '{"mbox": "mailto:ana@example.com"}',
            "verb": "http://adlnet.gov/expapi/verbs/completed",
            "activity": "http://example.com/course",
            "registration": REG.upper(),
            "related_activities": "true",
            "related_agents": "true",
            "since": "2024-05-01T10:00:00+02:00",
            "until": "2024-05-02T00:00:00.5Z",
            "limit": "25",
            "ascending": "true",
            "format": "canonical",
            "attachments": "false",
        }
    )
    assert q == StatementQuery(
        agent="mbox:mailto:ana@example.com",
        verb="http://adlnet.gov/expapi/verbs/completed",
        activity="http://example.com/course",
        registration=uuid.UUID(REG),
        related_activities=True,
        related_agents=True,
        since=datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc),
        until=datetime(2024, 5, 2, 0, 0, 0, 500000, tzinfo=timezone.utc),
        limit=25,
        ascending=True,
        format="canonical",
        attachments=False,
    )
    assert q.since.utcoffset() == timedelta(0)


def test_identified_group_agent_parameter():
    q = parse({"agent": '{"objectType": "Group", "account": {"homePage": "http://lms.example.com", "name": "g1"}}'})
    assert q.agent == "account:http://lms.example.com|g1"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"mbox": "ana@example.com"}',
        '{"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]}',
        '{"mbox": "mailto:a@example.com", "openid": "http://id.example.com/a"}',
    ],
)
def test_bad_agent_parameter(text):
    with pytest.raises(XapiError) as info:
        parse({"agent": text})
    assert info.value.status == 400
    assert info.value.path.startswith("agent"), info.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 100), ("7", 7), ("0", 500), ("500", 500), ("501", 500), ("100000000000000000000", 500)],
)
def test_limit(value, expected):
    params = {} if value is None else {"limit": value}
    assert parse(params).limit == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "", "ten", " 5", "٣"])
def test_bad_limit(value):
    rejects({"limit": value}, "limit")


@pytest.mark.parametrize("name", ["related_activities", "related_agents", "ascending", "attachments"])
@pytest.mark.parametrize("value", ["True", "1", "yes", ""])
def test_booleans_are_json_true_or_false(name, value):
    rejects({name: value}, name)


@pytest.mark.parametrize("name", ["verb", "activity"])
@pytest.mark.parametrize("value", ["", "completed", "http://exa mple.com", "/relative/path"])
def test_bad_iri(name, value):
    rejects({name: value}, name)


@pytest.mark.parametrize("value", ["", "not-a-uuid", "{ec531277-b57b-4c15-8d91-d292c5b2b8f7}", "ec531277b57b4c158d91d292c5b2b8f7"])
def test_bad_registration(value):
    rejects({"registration": value}, "registration")


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", ["yesterday", "2024-05-01", "2024-13-01T00:00:00Z", "2024-05-01T25:00:00Z", "1714557600"])
def test_bad_timestamps(name, value):
    rejects({name: value}, name)


def test_timestamp_without_zone_is_utc_and_unescaped_plus_is_accepted():
    q = parse({"since": "2024-05-01T10:00:00", "until": "2024-05-01T10:00:00 01:00"})
    assert q.since == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert q.until == datetime(2024, 5, 1, 9, tzinfo=timezone.utc)


def test_bad_format():
    rejects({"format": "EXACT"}, "format")


def test_unknown_and_wrongly_cased_parameters():
    err = rejects({"verbs": "http://example.com/v"}, "verbs")
    assert "unknown parameter" in err.message
    err = rejects({"Verb": "http://example.com/v"}, "Verb")
    assert "'verb'" in err.message
    rejects({"statementid": REG}, "statementid")


# -- single statement -----------------------------------------------------------------


def test_statement_id_with_format_and_attachments():
    assert parse({"statementId": REG, "format": "ids", "attachments": "true"}) == StatementFetch(
        statement_id=uuid.UUID(REG), voided=False, format="ids", attachments=True
    )
    assert parse({"voidedStatementId": REG}) == StatementFetch(statement_id=uuid.UUID(REG), voided=True)


def test_statement_id_and_voided_statement_id_together():
    rejects({"statementId": REG, "voidedStatementId": REG}, "voidedStatementId")


@pytest.mark.parametrize("other", ["agent", "verb", "limit", "since", "ascending", "related_agents"])
@pytest.mark.parametrize("single", ["statementId", "voidedStatementId"])
def test_single_fetch_excludes_filters(single, other):
    value = {"agent": '{"mbox": "mailto:a@example.com"}', "verb": "http://example.com/v", "limit": "1",
             "since": "2024-05-01T10:00:00Z", "ascending": "true", "related_agents": "true"}[other]
    err = rejects({single: REG, other: value}, other)
    assert single in err.message


def test_bad_statement_id():
    rejects({"statementId": "nope"}, "statementId")


# -- more -------------------------------------------------------------------------------


def test_more_token():
    assert more_token({"verb": "http://example.com/v"}) is None
    assert more_token({"more": "abc"}) == "abc"
    with pytest.raises(XapiError) as info:
        more_token({"more": "abc", "limit": "5"})
    assert info.value.status == 400 and info.value.path == "limit"
    rejects({"more": "abc", "limit": "5"}, "more")


SECRET = b"s" * 32

queries = st.builds(
    StatementQuery,
    agent=st.none() | st.text(max_size=40),
    verb=st.none() | st.text(max_size=40),
    activity=st.none() | st.text(max_size=40),
    registration=st.none() | st.uuids(),
    related_activities=st.booleans(),
    related_agents=st.booleans(),
    since=st.none() | st.datetimes(timezones=st.just(timezone.utc)),
    until=st.none() | st.datetimes(timezones=st.just(timezone.utc)),
    limit=st.integers(1, 10_000),
    ascending=st.booleans(),
    format=st.sampled_from(["exact", "ids", "canonical"]),
    attachments=st.booleans(),
)
positions = st.integers(0, 2**63 - 1)
names = st.text(min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(queries, positions, names, names)
def test_cursor_round_trips(query, position, key, tenant):
    token = encode_cursor(SECRET, key, tenant, query, position)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(SECRET, key, tenant, token) == (query, position)


@settings(max_examples=200, deadline=None)
@given(queries, positions, st.data())
def test_cursor_rejects_any_bit_flip(query, position, data):
    token = encode_cursor(SECRET, "key-1", "default", query, position)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    index = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[index] ^= 1 << bit
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(XapiError) as info:
        decode_cursor(SECRET, "key-1", "default", tampered)
    assert info.value.status == 400 and info.value.path == "more"


@settings(max_examples=100, deadline=None)
@given(queries, positions, names, names, names, names)
def test_cursor_of_another_credential_or_tenant_is_not_found(query, position, key, tenant, other_key, other_tenant):
    token = encode_cursor(SECRET, key, tenant, query, position)
    if (other_key, other_tenant) != (key, tenant):
        with pytest.raises(NotFoundError) as info:
            decode_cursor(SECRET, other_key, other_tenant, token)
        assert info.value.status == 404


def test_cursor_binding_is_unambiguous():
    token = encode_cursor(SECRET, "ab", "c", StatementQuery(limit=1), 0)
    with pytest.raises(NotFoundError):
        decode_cursor(SECRET, "a", "bc", token)


@pytest.mark.parametrize("token", ["", "!!!", "abc", "A" * 43, "A" * 200])
def test_malformed_cursors(token):
    with pytest.raises(XapiError) as info:
        decode_cursor(SECRET, "key-1", "default", token)
    assert info.value.status == 400


def test_cursor_from_another_secret_is_rejected():
    token = encode_cursor(b"other-secret", "key-1", "default", StatementQuery(limit=1), 5)
    with pytest.raises(XapiError) as info:
        decode_cursor(SECRET, "key-1", "default", token)
    assert info.value.status == 400


def test_query_module_does_not_import_the_cursor_module():
    # The cursor depends on the query (it signs one); the query must not depend
    # back on the cursor, or the two form an import circle.
    import ast
    import inspect

    from lrs.ingest import query

    tree = ast.parse(inspect.getsource(query))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not any(name and "cursor" in name for name in imported), imported
    assert not hasattr(query, "encode_cursor")
