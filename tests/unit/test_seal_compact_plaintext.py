"""A naming sealed anew seals the same bytes as before: ``compact_plaintext``
(cut from the Agent's sorted JSON) against encoding the Agent without
``objectType``.  A different byte would seal an identity two ways: a
Statement sent again would no longer compare equal to the one stored
(409), and the tag would no longer find its row."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from lrs.privacy import seal

_text = st.lists(st.sampled_from(['"', "\\", ",", ":", "{", "}", "a", "Ư", "\u2028", "\x00",
                                  "objectType", '"objectType":"Agent"', ',"objectType":"Group"']),
                max_size=8).map("".join)
_ifis = st.one_of(
    st.builds(lambda t: {"mbox": "mailto:" + t + "@example.org"}, _text),
    st.builds(lambda t: {"mbox_sha1sum": t}, _text),
    st.builds(lambda t: {"openid": "https://id.example/" + t}, _text),
    st.builds(lambda h, n: {"account": {"homePage": "https://" + h, "name": n}}, _text, _text),
)


@settings(max_examples=400, deadline=None)
@given(_ifis, st.sampled_from(["Agent", "Group"]), st.one_of(st.none(), _text), st.booleans())
def test_compact_plaintext_is_the_agent_encoded_without_its_type(ifi, object_type, name, type_first):
    agent = {"objectType": object_type, **ifi} if type_first else {**ifi, "objectType": object_type}
    if name is not None:
        agent["name"] = name
    expected = seal.encode({k: v for k, v in agent.items() if k != "objectType"})
    assert seal.compact_plaintext(seal.encode(agent), agent) == expected


def test_compact_plaintext_when_a_nested_object_has_the_member():
    # sorted, the account's own "objectType" would come first: encoded, not cut
    agent = {"objectType": "Agent", "account": {"homePage": "https://h.example", "name": "n", "objectType": "Agent"}}
    assert seal.compact_plaintext(seal.encode(agent), agent) == seal.encode({"account": agent["account"]})


def test_compact_plaintext_when_a_name_holds_the_member_text():
    # the member's text inside a string: "objectType" occurs twice, so it is encoded, not cut
    for name in ['x","objectType":"Agent', 'x"objectType', '"objectType":"Agent",']:
        agent = {"objectType": "Agent", "mbox": "mailto:a@example.org", "name": name}
        assert seal.compact_plaintext(seal.encode(agent), agent) == seal.encode(
            {"mbox": "mailto:a@example.org", "name": name})


def test_a_sealed_agent_opens_to_itself():
    agent = {"objectType": "Agent", "mbox": "mailto:lan@example.org", "name": 'Lan "objectType"'}
    key = seal.SealKey("ab" * 16, 3, seal.new_data_key_cipher(os.urandom(32)))
    sealer = seal.StatementSealer("t1", {}, {"mbox:mailto:lan@example.org": key}.__getitem__)
    form = sealer.agent(agent)
    opened = seal.open_agent(form, {(key.pseudonym, 3): key.cipher}, "t1", sealer.ciphertexts)
    assert opened == agent
