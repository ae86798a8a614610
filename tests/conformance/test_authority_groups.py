"""Data 2.4.9 "Authority": a Group authority is the 3-legged OAuth pairing of an application and a user
(1.0.3 Data 2.4.9.s3.b1, 2.4.9.s7, quoted below). The same Statements are sent with both version
headers: this LRS applies the rule to 1.0.3 and 2.0 requests alike."""

from __future__ import annotations

import pytest

from tests.conformance.support import assert_accepted, assert_rejected, fetch, stmt

CONSUMER = {"account": {"homePage": "http://example.com/xAPI/OAuth/Token", "name": "oauth_consumer_x75db"}}
USER = {"mbox": "mailto:bob@example.com"}


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
@pytest.mark.parametrize("identifier", [
    {"mbox": "mailto:xapigroup@example.com"},
    {"mbox_sha1sum": "ab" * 20},
    {"openid": "http://openid.example.org/group"},
    {"account": {"homePage": "http://example.org", "name": "group"}},
])
async def test_2_4_9_s3_b1_a_group_authority_with_its_own_identifier_is_rejected(client, identifier, version):
    """1.0.3 Data 2.4.9.s3.b1: "Authority MUST be an Agent, except in 3-legged OAuth, where it MUST be a
    Group with two Agents. The two Agents represent an application and user together." An identified
    Group is not that pairing: 400, nothing stored."""
    authority = {"objectType": "Group", **identifier, "member": [CONSUMER, USER]}
    await assert_rejected(client, stmt(authority=authority), fragment="anonymous", version=version)


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
async def test_2_4_9_s7_b2_a_group_authority_without_an_account_identified_member_is_rejected(client, version):
    """1.0.3 Data 2.4.9.s7.b1: "The authority MUST contain an Agent Object that represents the OAuth
    consumer, either by itself, or as part of a group in the case of 3-legged OAuth." and b2: "The Agent
    representing the OAuth consumer MUST be identified by account." Two mbox Agents are no such pair."""
    authority = {"objectType": "Group", "member": [USER, {"mbox": "mailto:alice@example.com"}]}
    await assert_rejected(client, stmt(authority=authority), fragment="account", version=version)


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
async def test_2_4_9_s8_the_spec_example_pair_is_accepted_and_then_overwritten(client, version):
    """1.0.3 Data 2.4.9.s8 (the example "pairing of an OAuth consumer and a user") is a valid authority;
    2.4.9.s3.b4: "The LRS SHOULD overwrite the authority on all Statements it stores, based on the
    credentials used to send those Statements."."""
    authority = {"objectType": "Group", "member": [CONSUMER, USER]}
    [statement_id] = await assert_accepted(client, stmt(authority=authority), version=version)
    assert (await fetch(client, statement_id))["authority"] != authority
