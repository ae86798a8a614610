"""Sealing one request's Statements in one walk (lrs.privacy.statement_agents.seal_statement
and StatementSealer): the same sealed forms as sealing each Agent on its own,
keys read only for the Agents that need them, known forms reused."""

from __future__ import annotations

import copy
import os

import pytest

from lrs.privacy import opening, seal, sealed_text, statement_agents, statement_sealer
from lrs.privacy.data_key import DataKey, SealKey, new_data_key_cipher
from tests.unit.test_privacy_seal import _seal_v3
from tests.unit.test_privacy_seal import _seal_v4 as _one_by_one  # each Agent sealed on its own (seal_agent), v4

TENANT = "t1"
PSEUDONYM_KEY = b"k" * 32

LAN = {"objectType": "Agent", "mbox": "mailto:lan@example.org", "name": "Nguyễn Thị Lan"}
STATEMENT = {
    "id": "6fbd600f-d17c-4c74-801a-2ec2e53231f7",
    "actor": LAN,
    "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
    "object": {"objectType": "SubStatement",
               "actor": {"objectType": "Group", "name": "Nhóm 3",
                         "member": [{"account": {"homePage": "https://x.example", "name": "minh"}, "name": "Minh"}]},
               "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
               "object": {"objectType": "Agent", "openid": "https://id.example/hoa"},
               "context": {"instructor": {"mbox_sha1sum": "b" * 40}}},
    "authority": {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "platform"}},
    "context": {"instructor": {"mbox_sha1sum": "a" * 40, "name": "Thầy Hùng"},
                "team": {"objectType": "Group", "mbox": "mailto:team@example.org", "name": "Đội A",
                         "member": [{"mbox": "mailto:lan@example.org"}]},
                "contextAgents": [{"objectType": "contextAgent", "agent": dict(LAN)}],
                "contextGroups": [{"objectType": "contextGroup",
                                   "group": {"objectType": "Group", "openid": "https://id.example/g"}}],
                "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"},
}
ACTIVITY_STATEMENT = {"actor": {"objectType": "Agent", "mbox": "mailto:an@example.org", "name": "An"},
                      "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
                      "object": {"objectType": "Activity", "id": "https://example.org/a"},
                      "context": {"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"}}


def _keys(*statements):
    found = {}
    for statement in statements:
        for ident in statement_agents.identities(statement):
            found[ident] = SealKey(seal.pseudonym(PSEUDONYM_KEY, TENANT, ident), 1,
                                        new_data_key_cipher(os.urandom(32)))
    return found


def test_the_walk_visits_every_agent_place_in_the_generic_order_and_leaves_the_input_alone():
    before = copy.deepcopy(STATEMENT)
    visited = []

    def mark(agent):
        visited.append(agent)
        return {"objectType": "Agent", "account": {"homePage": "h", "name": str(len(visited))}}

    sealed = statement_agents.seal_statement(STATEMENT, mark)
    expected = [c[n] for c, n in statement_agents.agent_slots(copy.deepcopy(STATEMENT)) if isinstance(c.get(n), dict)]
    assert visited == expected and len(visited) == 9
    assert STATEMENT == before
    for container, name in statement_agents.agent_slots(sealed):
        assert container[name]["account"]["homePage"] == "h", name
    assert sealed["context"]["registration"] == STATEMENT["context"]["registration"]


def test_the_sealer_seals_as_each_agent_sealed_on_its_own():
    keys = _keys(STATEMENT, ACTIVITY_STATEMENT)
    sealer = statement_sealer.StatementSealer(TENANT, {}, keys.__getitem__)
    sealed = [statement_agents.seal_statement(s, sealer.agent) for s in (STATEMENT, ACTIVITY_STATEMENT)]
    one, stored_one = _one_by_one(STATEMENT, keys)
    two, stored_two = _one_by_one(ACTIVITY_STATEMENT, keys)
    assert sealed == [one, two]
    assert sealer.ciphertexts == {**stored_one, **stored_two}
    assert sealer.refs == opening.sealed_refs(one) | opening.sealed_refs(two)
    assert not sealer.missing
    opened = opening.open_statement(sealed[0], {(k.pseudonym, 1): k.cipher for k in keys.values()}, TENANT,
                                 sealer.ciphertexts)
    assert opened == STATEMENT


def test_agents_whose_keys_are_not_at_hand_are_sealed_after_their_keys_are_read():
    keys = _keys(STATEMENT, ACTIVITY_STATEMENT)
    cached = {k: v for k, v in keys.items() if k != "mbox:mailto:lan@example.org"}

    def key_of(ident):
        return cached[ident]

    sealer = statement_sealer.StatementSealer(TENANT, {}, key_of)
    sealed = [statement_agents.seal_statement(s, sealer.agent) for s in (STATEMENT, ACTIVITY_STATEMENT)]
    # Lan as the actor, a context Agent and a member of the team: those three wait.
    assert sealed[0]["actor"] == {} and sealed[0]["context"]["contextAgents"][0]["agent"] == {}
    assert sealed[0]["context"]["team"] == {}
    assert sealer.missing >= {"mbox:mailto:lan@example.org"}
    assert sealer.missing <= set(keys)
    sealer.finish({ident: keys[ident] for ident in sealer.missing})
    assert sealed == [_one_by_one(STATEMENT, keys)[0], _one_by_one(ACTIVITY_STATEMENT, keys)[0]]


def test_a_known_sealed_form_is_reused_and_an_agent_repeated_in_a_request_is_sealed_once():
    keys = _keys(ACTIVITY_STATEMENT)
    first = statement_sealer.StatementSealer(TENANT, {}, keys.__getitem__)
    batch = [statement_agents.seal_statement(ACTIVITY_STATEMENT, first.agent) for _ in range(3)]
    assert len(first.ciphertexts) == 1 and len(first.fresh) == 1
    assert batch[0]["actor"] is batch[2]["actor"]

    def no_key(ident):
        raise AssertionError(f"a known form needs no key ({ident})")

    again = statement_sealer.StatementSealer(TENANT, first.fresh, no_key)
    assert statement_agents.seal_statement(ACTIVITY_STATEMENT, again.agent) == batch[0]
    assert again.ciphertexts == {} and again.refs == first.refs
    renamed = {**ACTIVITY_STATEMENT, "actor": {**ACTIVITY_STATEMENT["actor"], "name": "An Nguyễn"}}
    other = statement_sealer.StatementSealer(TENANT, first.fresh, keys.__getitem__)
    sealed = statement_agents.seal_statement(renamed, other.agent)
    assert sealed["actor"]["account"] == batch[0]["actor"]["account"]
    assert sealed["actor"]["sealed"] != batch[0]["actor"]["sealed"] and len(other.ciphertexts) == 1


def test_the_v3_form_is_sealed_when_asked_for_as_builds_before_v4_did():
    keys = _keys(STATEMENT)
    sealer = statement_sealer.StatementSealer(TENANT, {}, keys.__getitem__, reference_form="v3")
    sealed = statement_agents.seal_statement(STATEMENT, sealer.agent)
    expected, stored = _seal_v3(STATEMENT, keys)
    assert sealed == expected and sealed["actor"]["sealed"].startswith("v3.1.") and sealer.ciphertexts == stored


def test_the_v2_form_is_sealed_when_references_are_off():
    keys = _keys(ACTIVITY_STATEMENT)
    sealer = statement_sealer.StatementSealer(TENANT, {}, keys.__getitem__, references=False)
    sealed = statement_agents.seal_statement(ACTIVITY_STATEMENT, sealer.agent)
    assert sealed["actor"]["sealed"].startswith("v2.1.") and sealer.ciphertexts == {}
    assert opening.open_statement(sealed, {(k.pseudonym, 1): k.cipher for k in keys.values()}, TENANT) == ACTIVITY_STATEMENT


def test_the_known_forms_of_every_tenant_together_stay_within_the_cache_capacity():
    """The cache of sealed forms is bounded as the key cache is: many
    tenants must not multiply its memory by their number."""
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_key_sealing import Sealed
    from lrs.store.learner_keys import LearnerKeys

    keyring = LearnerKeys(None, MasterKey(os.urandom(32)), capacity=4)  # type: ignore[arg-type]
    for n in range(5):
        forms = {f"agent {n}.{i}".encode(): statement_sealer.KnownForm("Agent", f"p{n}{i}", 1, f"v3.1.{n}{i}")
                 for i in range(3)}
        keyring.stored(Sealed([], {}, 0, frozenset(), {}, forms, keyring._version, f"tenant-{n}"))
        assert sum(len(forms) for forms in keyring._sealed.values()) <= 4
    assert keyring._sealed  # the last request's forms are kept


def test_a_full_cache_of_sealed_forms_drops_its_oldest_half_not_all():
    """With more learners than the capacity, emptying the whole cache when
    it fills left it half as full on average (half the hits); the oldest
    forms go first, the newest stay."""
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_key_sealing import Sealed
    from lrs.store.learner_keys import LearnerKeys

    keyring = LearnerKeys(None, MasterKey(os.urandom(32)), capacity=10)  # type: ignore[arg-type]
    for n in range(11):
        forms = {f"agent {n}".encode(): statement_sealer.KnownForm("Agent", f"p{n}", 1, f"v3.1.{n}")}
        keyring.stored(Sealed([], {}, 0, frozenset(), {}, forms, keyring._version, "tenant"))
    kept = keyring._sealed["tenant"]
    assert list(kept.keys()) == [f"agent {n}".encode() for n in range(5, 11)]  # 0-4 out, 5-9 and the new one in


def test_a_cached_data_key_keeps_its_bytes_and_seals_and_opens_as_the_cipher_would():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

    raw = os.urandom(32)
    key = new_data_key_cipher(raw)
    assert isinstance(key, DataKey) and not hasattr(key, "__dict__")
    sealed = key.encrypt(b"\0" * 12, b"plain", b"aad")
    assert sealed == AESGCMSIV(raw).encrypt(b"\0" * 12, b"plain", b"aad")
    assert key.decrypt(b"\0" * 12, sealed, b"aad") == key.cipher().decrypt(b"\0" * 12, sealed, b"aad") == b"plain"
    with pytest.raises(ValueError):
        new_data_key_cipher(b"short")


def test_no_encoding_of_a_cached_data_key_writes_the_key():
    """A DataKey is a msgspec Struct (kept out of the collector's sight), and
    msgspec writes a Struct's fields whatever its repr hides: encoding a
    cached key, or a log line holding one (lrs.logs encodes with msgspec),
    wrote the raw key in base64.  Pickling it is refused."""
    import base64
    import gc
    import pickle

    import msgspec
    import structlog
    from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

    from lrs.logs import render_line

    raw = os.urandom(32)
    key = new_data_key_cipher(raw)
    sealed_key = SealKey("p" * 32, 1, key)
    forms = {base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"="), raw.hex().encode(), raw,
             str(int.from_bytes(raw, "big")).encode()}
    written = [msgspec.json.encode(sealed_key), msgspec.json.encode(key), msgspec.json.encode(sealed_key, enc_hook=repr),
               render_line(None, "info", {"event": "sealed", "key": sealed_key, "keys": [key]}).encode(),
               structlog.processors.JSONRenderer()(None, "info", {"key": sealed_key}).encode()]
    try:
        written.append(msgspec.msgpack.encode(sealed_key, enc_hook=repr))
    except OverflowError:  # msgpack has no integer that wide: refused, nothing written
        pass
    for line in written:
        assert not any(form in line for form in forms), line
    with pytest.raises(TypeError):
        pickle.dumps(sealed_key)
    assert not gc.is_tracked(key)
    assert key.encrypt(b"\0" * 12, b"x", b"") == AESGCMSIV(raw).encrypt(b"\0" * 12, b"x", b"")


def _colliding_tags(monkeypatch):
    """Every v4 tag the same (empty): two namings of one identity then share
    a row (a 1 in 2**48 chance per pair with real tags)."""
    monkeypatch.setattr(sealed_text, "_TAG_BYTES", 0)


def test_two_namings_of_one_learner_whose_tags_collide_in_one_request_each_open_as_sent(monkeypatch):
    _colliding_tags(monkeypatch)
    renamed = dict(LAN, name="Lan")
    statements = [dict(ACTIVITY_STATEMENT, actor=LAN), dict(ACTIVITY_STATEMENT, actor=renamed)]
    keys = _keys({"actor": LAN, "authority": STATEMENT["authority"]})
    sealer = statement_sealer.StatementSealer(TENANT, {}, keys.__getitem__)
    sealed = [statement_agents.seal_statement(s, sealer.agent) for s in statements]
    assert sealed[0]["actor"]["sealed"].startswith("v4.") and sealed[1]["actor"]["sealed"].startswith("v3.")
    ciphers = {(k.pseudonym, k.generation): k.cipher for k in keys.values()}
    opened = [opening.open_statement(s, ciphers, TENANT, sealer.ciphertexts) for s in sealed]
    assert [s["actor"] for s in opened] == [LAN, renamed]


def test_the_learner_caches_stay_out_of_the_garbage_collectors_sight():
    """A worker caches tens of thousands of learners; a full collection
    visited each of them (9-12 ms at 50,000) while any cached object, or a
    cache dict, was tracked.  Keys, ciphers, pseudonyms and sealed forms
    are kept in packed tables (lrs.store.learner_key_table): each table
    is one object the collector visits, holding a bytearray and an array
    and no object a learner, however many learners come (bench/seal_gc_heap.py)."""
    import asyncio
    import gc

    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys

    keyring = LearnerKeys(None, MasterKey(os.urandom(32)))  # type: ignore[arg-type]
    authority = STATEMENT["authority"]

    async def seal_known(n: int) -> None:
        actor = {"objectType": "Agent", "mbox": f"mailto:learner{n}@example.org", "name": f"Learner {n}"}
        for agent in (actor, authority):
            ident = statement_agents.identifier(agent)
            keyring._remember(TENANT, keyring.pseudonym(TENANT, ident), 1,
                              new_data_key_cipher(os.urandom(32)), keyring._version)
        keyring.stored(await keyring.seal_statements(TENANT, [{**ACTIVITY_STATEMENT, "actor": actor}], authority))

    def held() -> list[object]:
        tables = [keyring._current, keyring._ciphers, keyring._pseudonyms, keyring._sealed[TENANT]]
        found = [o for table in tables for o in gc.get_referents(table) if not isinstance(o, (type, int, type(None)))]
        return found + [chunk for o in found if isinstance(o, list) for chunk in o]  # the records' chunks of 1 MiB

    for n in range(3):
        asyncio.run(seal_known(n))
    gc.collect()
    before = held()
    assert {type(o).__name__ for o in before} == {"bytearray", "array", "list", "memoryview"}
    asyncio.run(seal_known(3))  # a new learner adds no object to them
    assert len(keyring._sealed[TENANT]) == 5 and len(held()) == len(before)
    assert {f.pseudonym for f in keyring._sealed[TENANT].values()} <= {k.pseudonym for k in keyring._current.values()}
    assert "DataKey(...)" == repr(next(iter(keyring._ciphers.values())))  # never the key's bytes


def test_a_known_form_is_built_from_the_cache_each_time_and_not_kept_in_the_request():
    """Known forms are asked first, and a form built from one is not stored
    in the request's own forms (a look-up and a store per Agent for nothing
    at batch 100, where a request names each learner about once)."""
    keys = _keys(ACTIVITY_STATEMENT)
    first = statement_sealer.StatementSealer(TENANT, {}, keys.__getitem__)
    expected = statement_agents.seal_statement(ACTIVITY_STATEMENT, first.agent)

    def no_key(ident):
        raise AssertionError(f"a known form needs no key ({ident})")

    again = statement_sealer.StatementSealer(TENANT, first.fresh, no_key)
    batch = [statement_agents.seal_statement(ACTIVITY_STATEMENT, again.agent) for _ in range(2)]
    assert batch == [expected, expected] and again.refs == first.refs
    assert again._made == {} and again.fresh == {} and again.ciphertexts == {}
