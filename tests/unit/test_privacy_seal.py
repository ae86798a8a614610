"""The pure sealing rules (lrs.privacy.seal) and the master key file."""

from __future__ import annotations

import base64
import hashlib
import os

import msgspec
import pytest

from lrs.privacy import master, opening, seal, sealed_text, statement_agents
from lrs.privacy.data_key import SealKey, new_data_key_cipher
from lrs.xapi.identity import ifi_key

TENANT = "t1"
PSEUDONYM_KEY = b"k" * 32


def _keys(statement):
    return {
        ident: SealKey(seal.pseudonym(PSEUDONYM_KEY, TENANT, ident), 1, new_data_key_cipher(os.urandom(32)))
        for ident in statement_agents.identities(statement)
    }


def _seal(statement, keys):
    return statement_agents.seal_statement(statement, lambda agent: seal.seal_agent(
        agent, keys, lambda key, plaintext: sealed_text.seal_bytes(key, TENANT, plaintext)))


def _ciphers(keys):
    return {(k.pseudonym, k.generation): k.cipher for k in keys.values()}


STATEMENT = {
    "id": "6fbd600f-d17c-4c74-801a-2ec2e53231f7",
    "actor": {"mbox": "mailto:lan@example.org", "name": "Nguyễn Thị Lan"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
    "object": {"objectType": "SubStatement",
               "actor": {"objectType": "Group", "name": "Nhóm 3",
                         "member": [{"account": {"homePage": "https://x.example", "name": "minh"}, "name": "Minh"}]},
               "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
               "object": {"objectType": "Agent", "openid": "https://id.example/hoa"}},
    "authority": {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "platform"}},
    "context": {"instructor": {"mbox_sha1sum": "a" * 40, "name": "Thầy Hùng"},
                "team": {"objectType": "Group", "mbox": "mailto:team@example.org", "name": "Đội A",
                         "member": [{"mbox": "mailto:lan@example.org"}]}},
}


def test_sealing_hides_every_identifier_and_name_and_opening_restores_the_statement():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    text = msgspec.json.encode(sealed).decode()
    for clear in ("lan@example.org", "Nguyễn", "minh", "Minh", "hoa", "platform", "a" * 40, "Hùng",
                  "team@example.org", "Đội A", "Nhóm 3"):
        assert clear not in text, clear
    assert opening.is_sealed_payload(seal.encode(sealed))
    assert opening.open_statement(sealed, _ciphers(keys), TENANT) == STATEMENT
    assert STATEMENT["actor"]["name"] == "Nguyễn Thị Lan"  # the input is not modified


def test_the_sealed_form_is_an_agent_known_by_its_pseudonym():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    lan = seal.pseudonym(PSEUDONYM_KEY, TENANT, "mbox:mailto:lan@example.org")
    assert ifi_key(sealed["actor"]) == f"account:https://lrs.invalid/pseudonym|{lan}"
    # The same person as a team member gets the same pseudonym.
    assert sealed["context"]["team"]["member"][0]["account"]["name"] == lan
    # An anonymous Group keeps its (sealed) members and no account of its own.
    group = sealed["object"]["actor"]
    assert "account" not in group and len(group["member"]) == 1


def test_sealing_is_deterministic_so_the_same_statement_compares_equal():
    keys = _keys(STATEMENT)
    assert _seal(STATEMENT, keys) == _seal(STATEMENT, keys)
    renamed = {**STATEMENT, "actor": {**STATEMENT["actor"], "name": "Lan"}}
    assert _seal(renamed, keys)["actor"] != _seal(STATEMENT, keys)["actor"]


def test_an_erased_identity_opens_to_the_erased_form_and_the_others_stay_readable():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    lan = keys["mbox:mailto:lan@example.org"]
    ciphers = _ciphers(keys)
    ciphers[(lan.pseudonym, lan.generation)] = None
    opened = opening.open_statement(sealed, ciphers, TENANT)
    assert opened["actor"] == {"objectType": "Agent", "account": {"homePage": "https://lrs.invalid/erased", "name": lan.pseudonym}}
    assert opened["context"]["team"]["member"][0]["account"]["homePage"] == "https://lrs.invalid/erased"
    assert opened["context"]["instructor"] == STATEMENT["context"]["instructor"]


def test_a_ciphertext_moved_to_another_identity_or_tenant_does_not_open():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    opened = opening.open_statement(sealed, _ciphers(keys), "another-tenant")
    assert opened["actor"]["account"]["homePage"] == "https://lrs.invalid/erased"


def test_pseudonyms_depend_on_key_tenant_and_identifier():
    base = seal.pseudonym(PSEUDONYM_KEY, TENANT, "mbox:mailto:a@example.org")
    assert len(base) == 32 and int(base, 16) >= 0
    assert base == seal.pseudonym(PSEUDONYM_KEY, TENANT, "mbox:mailto:a@example.org")
    assert base != seal.pseudonym(b"j" * 32, TENANT, "mbox:mailto:a@example.org")
    assert base != seal.pseudonym(PSEUDONYM_KEY, "t2", "mbox:mailto:a@example.org")
    assert base != seal.pseudonym(PSEUDONYM_KEY, TENANT, "mbox:mailto:b@example.org")


def test_master_key_file_is_made_once_private_and_wraps_keys(tmp_path):
    path = tmp_path / "sub" / "privacy-key"
    first = master.load_or_create(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = master.load_or_create(path)
    assert first.pseudonym_key == again.pseudonym_key
    wrapped = first.wrap(b"d" * 32, TENANT, "p", 1)
    assert again.unwrap(wrapped, TENANT, "p", 1) == b"d" * 32
    with pytest.raises(Exception):
        again.unwrap(wrapped, TENANT, "p", 2)


def test_a_bad_master_key_file_is_refused_with_its_path(tmp_path):
    path = tmp_path / "privacy-key"
    path.write_text("not base64!\n")
    with pytest.raises(master.PrivacyKeyError, match="privacy-key"):
        master.load_or_create(path)


def test_a_sealed_document_event_carries_no_content_in_clear_and_replays_until_erased():
    from datetime import datetime, timezone

    from lrs.documents.concurrency import etag_of
    from lrs.documents.events import DOCUMENT_EVENT, document_event_payload, replay_documents
    from lrs.documents.model import DocumentKey, DocumentSet, NewVersion, Resource

    ident = "mbox:mailto:lan@example.org"
    key = SealKey(seal.pseudonym(PSEUDONYM_KEY, TENANT, ident), 1, new_data_key_cipher(os.urandom(32)))
    stored_key = f"account:{seal.PSEUDONYM_HOME}|{key.pseudonym}"
    context = DocumentSet(Resource.AGENT_PROFILE, "", stored_key, None)
    content = "Nguyễn Thị Lan".encode()
    payload = document_event_payload(
        DocumentKey(context, "contact"), "put", NewVersion(content, "text/plain", etag_of(content)),
        lambda data: sealed_text.seal_bytes(key, TENANT, data),
    )
    assert content not in payload and b"lan@example.org" not in payload
    # Nor the SHA-1 of the content (its ETag): a short document is found again
    # from its hash by trying the likely contents, long after the erasure.
    assert etag_of(content).strip('"').encode() not in payload
    events = [(1, TENANT, DOCUMENT_EVENT, datetime(2026, 1, 1, tzinfo=timezone.utc), payload)]
    ciphers = {(key.pseudonym, key.generation): key.cipher}
    [row] = replay_documents(events, lambda tenant, text: sealed_text.open_text(text, ciphers, tenant)).values()
    assert row.content == content and row.etag == etag_of(content)
    erased = {(key.pseudonym, key.generation): None}
    assert replay_documents(events, lambda tenant, text: sealed_text.open_text(text, erased, tenant)) == {}
    with pytest.raises(ValueError, match="sealed"):
        replay_documents(events)


def _v1_form(agent, key):
    """The sealed form as stores written before v2 hold it."""
    own = {k: v for k, v in agent.items() if k != "member"}
    return {"objectType": agent.get("objectType", "Agent"),
            "account": {"homePage": seal.PSEUDONYM_HOME, "name": key.pseudonym},
            "sealed": sealed_text.seal_bytes(key, TENANT, seal.encode(own))}


def test_an_agent_sent_with_its_object_type_is_sealed_in_the_compact_v2_form():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    authority = sealed["authority"]
    pseudonym = authority["account"]["name"]
    assert authority["sealed"].startswith("v2.1.") and pseudonym not in authority["sealed"]
    # v1 for an Agent sent without objectType and for an Anonymous Group (no account to name the pseudonym).
    assert sealed["actor"]["sealed"].startswith("v1.") and sealed["object"]["actor"]["sealed"].startswith("v1.")
    assert opening.sealed_refs(sealed) == {(k.pseudonym, k.generation) for k in keys.values()}
    key = next(k for k in keys.values() if k.pseudonym == pseudonym)
    v1 = _v1_form(STATEMENT["authority"], key)
    assert len(authority["sealed"]) < len(v1["sealed"]) - 40
    # The v2 ciphertext is bound to its pseudonym: under another account name it does not open.
    moved = dict(authority, account={"homePage": seal.PSEUDONYM_HOME, "name": "0" * 32})
    ciphers = _ciphers(keys) | {("0" * 32, 1): key.cipher}
    assert opening.open_agent(moved, ciphers, TENANT)["account"]["homePage"] == seal.ERASED_HOME


def test_statements_sealed_in_the_v1_form_before_v2_still_open():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    by_pseudonym = {k.pseudonym: k for k in keys.values()}
    old = dict(sealed, authority=_v1_form(STATEMENT["authority"], by_pseudonym[sealed["authority"]["account"]["name"]]))
    assert old["authority"]["sealed"].startswith("v1.")
    assert opening.is_sealed_payload(seal.encode(old))
    assert opening.sealed_refs(old) == opening.sealed_refs(sealed)
    assert opening.open_statement(old, _ciphers(keys), TENANT) == STATEMENT


def _seal_v3(statement, keys, seal_apart=sealed_text.seal_reference):
    """Sealed as the Statement writer sealed before v4 (v3): ciphertexts apart, by reference."""
    stored: dict[bytes, bytes] = {}

    def seal_text(key, plaintext):
        if plaintext.startswith(sealed_text.COMPACT_MARK):
            text, ref, ciphertext = seal_apart(key, TENANT, plaintext[len(sealed_text.COMPACT_MARK):])
            stored[ref] = ciphertext
            return text
        return sealed_text.seal_bytes(key, TENANT, plaintext)

    return statement_agents.seal_statement(statement, lambda agent: seal.seal_agent(agent, keys, seal_text)), stored


def _seal_v4(statement, keys):
    """Sealed as the Statement writer seals (v4): ciphertexts apart, by row."""
    return _seal_v3(statement, keys, sealed_text.seal_short)


def test_the_v3_form_carries_a_reference_that_commits_to_a_ciphertext_kept_apart():
    keys = _keys(STATEMENT)
    sealed, stored = _seal_v3(STATEMENT, keys)
    authority, team = sealed["authority"], sealed["context"]["team"]
    assert authority["sealed"].startswith("v3.1.") and len(authority["sealed"]) == len("v3.1.") + 22
    assert team["sealed"].startswith("v3.1.")
    v2 = _seal(STATEMENT, keys)["authority"]["sealed"]
    assert len(authority["sealed"]) < len(v2) - 80
    # The authority, the team and the SubStatement's Agent object (each sent with its objectType).
    assert opening.stored_references(sealed) == set(stored) and len(stored) == 3
    for ciphertext in stored.values():
        assert ciphertext.hex() not in msgspec.json.encode(sealed).decode()
    assert opening.sealed_refs(sealed) == opening.sealed_refs(_seal(STATEMENT, keys))
    # Deterministic: the same identity sealed again gives the same reference.
    assert _seal_v3(STATEMENT, keys)[0] == sealed
    assert opening.open_statement(sealed, _ciphers(keys), TENANT, stored) == STATEMENT


def test_a_v3_form_whose_ciphertext_is_missing_or_not_the_one_referenced_does_not_open():
    keys = _keys(STATEMENT)
    sealed, stored = _seal_v3(STATEMENT, keys)
    ref = next(iter(opening.stored_references({"actor": sealed["authority"]})))
    missing = {k: v for k, v in stored.items() if k != ref}
    opened = opening.open_statement(sealed, _ciphers(keys), TENANT, missing)
    assert opened["authority"]["account"]["homePage"] == seal.ERASED_HOME
    assert opened["context"]["team"] == STATEMENT["context"]["team"]  # the others open
    # Another identity's ciphertext given for this reference is refused.
    other = next(v for k, v in stored.items() if k != ref)
    swapped = {**stored, ref: other}
    assert opening.open_statement(sealed, _ciphers(keys), TENANT, swapped)["authority"]["account"]["homePage"] == \
        seal.ERASED_HOME
    # A v3 ciphertext does not open as a v2 text (its associated data is its own).
    key = next(k for k in keys.values() if k.pseudonym == sealed["authority"]["account"]["name"])
    as_v2 = dict(sealed["authority"], sealed="v2.1." + base64.urlsafe_b64encode(stored[ref]).rstrip(b"=").decode())
    assert opening.open_agent(as_v2, _ciphers(keys), TENANT)["account"]["homePage"] == seal.ERASED_HOME
    assert key.generation == 1


def test_the_v4_form_carries_a_short_tag_and_finds_its_ciphertext_by_pseudonym_generation_and_tag():
    keys = _keys(STATEMENT)
    sealed, stored = _seal_v4(STATEMENT, keys)
    authority, team = sealed["authority"], sealed["context"]["team"]
    assert authority["sealed"].startswith("v4.1.") and len(authority["sealed"]) == len("v4.1.") + 12
    assert team["sealed"].startswith("v4.1.")
    assert len(authority["sealed"]) == len(_seal_v3(STATEMENT, keys)[0]["authority"]["sealed"]) - 10
    assert opening.stored_references(sealed) == set(stored) and len(stored) == 3
    for ciphertext in stored.values():
        assert ciphertext.hex() not in msgspec.json.encode(sealed).decode()
    assert opening.sealed_refs(sealed) == opening.sealed_refs(_seal(STATEMENT, keys))
    assert _seal_v4(STATEMENT, keys)[0] == sealed  # deterministic
    assert opening.open_statement(sealed, _ciphers(keys), TENANT, stored) == STATEMENT
    # The row is the identity's own: the same tag under another pseudonym names another row.
    tag = sealed_text.b64_unpadded(authority["sealed"].split(".", 2)[2])
    row = sealed_text.short_row(authority["account"]["name"], 1, tag)
    assert row in stored and sealed_text.short_row(team["account"]["name"], 1, tag) != row
    assert sealed_text.short_row(authority["account"]["name"], 2, tag) != row


def test_a_v4_form_whose_ciphertext_is_missing_or_not_the_one_tagged_does_not_open():
    keys = _keys(STATEMENT)
    sealed, stored = _seal_v4(STATEMENT, keys)
    row = next(iter(opening.stored_references({"actor": sealed["authority"]})))
    missing = {k: v for k, v in stored.items() if k != row}
    opened = opening.open_statement(sealed, _ciphers(keys), TENANT, missing)
    assert opened["authority"]["account"]["homePage"] == seal.ERASED_HOME
    assert opened["context"]["team"] == STATEMENT["context"]["team"]
    # Another ciphertext put in the row does not match the tag the Statement carries.
    other = next(v for k, v in stored.items() if k != row)
    assert opening.open_statement(sealed, _ciphers(keys), TENANT, {**stored, row: other})["authority"]["account"][
        "homePage"] == seal.ERASED_HOME
    # The same identity sealed in v3 and in v4 are different ciphertexts (each form's associated data is its own):
    # a v3 ciphertext kept in a v4 row does not open.
    v3, stored_v3 = _seal_v3(STATEMENT, keys)
    v3_ciphertext = stored_v3[next(iter(opening.stored_references({"actor": v3["authority"]})))]
    forged_tag = hashlib.sha256(v3_ciphertext).digest()[:6]
    forged = dict(sealed["authority"], sealed="v4.1." + base64.urlsafe_b64encode(forged_tag).decode())
    forged_row = sealed_text.short_row(forged["account"]["name"], 1, forged_tag)
    assert opening.open_agent(forged, _ciphers(keys), TENANT, {forged_row: v3_ciphertext})["account"]["homePage"] == \
        seal.ERASED_HOME
    # Erased: no key, the erased form.
    assert opening.open_statement(sealed, {}, TENANT, stored)["authority"] == {
        "objectType": "Agent", "account": {"homePage": seal.ERASED_HOME, "name": sealed["authority"]["account"]["name"]}}


def test_a_statement_holding_v3_and_v4_forms_opens_both():
    keys = _keys(STATEMENT)
    v3, stored_v3 = _seal_v3(STATEMENT, keys)
    v4, stored_v4 = _seal_v4(STATEMENT, keys)
    mixed = dict(v4, authority=v3["authority"])
    stored = {**stored_v3, **stored_v4}
    assert opening.stored_references(mixed) <= set(stored) and len(opening.stored_references(mixed)) == 3
    assert opening.open_statement(mixed, _ciphers(keys), TENANT, stored) == STATEMENT


def test_a_stored_statement_in_the_v4_form_is_shorter_compressed_than_in_v3():
    """The stored bytes (the event payload as the log keeps it, zstd with the
    shipped dictionary): each v3 reference is 22 random characters, each v4
    tag 8, and compression removes neither."""
    from lrs.payload_codec import store_payload

    statements = [{"id": f"6fbd600f-d17c-4c74-801a-{n:012d}",
                   "actor": {"objectType": "Agent", "mbox": f"mailto:learner{n}@example.gov", "name": f"Learner {n}"},
                   "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
                   "object": {"id": f"https://mooc.example.gov/unit-{n}", "objectType": "Activity"},
                   "authority": {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "app"}}}
                  for n in range(50)]
    v3_bytes = v4_bytes = 0
    for one in statements:
        keys = _keys(one)
        v3, v4 = _seal_v3(one, keys)[0], _seal_v4(one, keys)[0]
        assert opening.sealed_refs(v3) == opening.sealed_refs(v4)
        v3_bytes += len(store_payload(seal.encode(v3)))
        v4_bytes += len(store_payload(seal.encode(v4)))
    assert v4_bytes <= v3_bytes - 20 * len(statements)  # two identities, 10 characters fewer each


def test_agent_named_finds_an_identity_by_pseudonym_in_an_opened_statement_or_says_it_was_erased():
    keys = _keys(STATEMENT)
    sealed = _seal(STATEMENT, keys)
    pseudonym_of = lambda ident: seal.pseudonym(PSEUDONYM_KEY, TENANT, ident)  # noqa: E731
    opened = opening.open_statement(sealed, _ciphers(keys), TENANT)
    for ident in ("mbox:mailto:lan@example.org", "openid:https://id.example/hoa", "account:https://x.example|minh"):
        agent, erased = opening.agent_named(opened, pseudonym_of(ident), pseudonym_of)
        assert agent is not None and ifi_key(agent) == ident and not erased
    assert opening.agent_named(opened, "0" * 32, pseudonym_of) == (None, False)
    lan = pseudonym_of("mbox:mailto:lan@example.org")
    without_lan = {k: v for k, v in _ciphers(keys).items() if k[0] != lan}  # Lan's key destroyed
    erased_form = opening.open_statement(sealed, without_lan, TENANT)
    assert opening.agent_named(erased_form, lan, pseudonym_of) == (None, True)
    assert opening.agent_named(erased_form, pseudonym_of("openid:https://id.example/hoa"), pseudonym_of)[0] is not None


def _load_at_once(path, barrier, results):
    import secrets
    import time

    def slow_token_bytes(n):  # a busy machine: time passes while a key is made
        time.sleep(0.2)
        return secrets.token_bytes(n)

    master.secrets = type("SlowSecrets", (), {"token_bytes": staticmethod(slow_token_bytes)})
    barrier.wait()
    try:
        results.put(master.load_or_create(path).pseudonym_key)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(repr(exc))


def test_processes_starting_together_agree_on_one_master_key_and_never_read_a_half_written_file(tmp_path):
    """Two HTTP workers start at once: one made the file empty and the other
    read it before the key was written ("a privacy key is 32 bytes, got 0")."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for attempt in range(2):
        path = tmp_path / str(attempt) / "privacy-key"
        barrier, results = context.Barrier(6), context.Queue()
        procs = [context.Process(target=_load_at_once, args=(path, barrier, results)) for _ in range(6)]
        for proc in procs:
            proc.start()
        keys = [results.get(timeout=30) for _ in procs]
        for proc in procs:
            proc.join(30)
        assert len(set(keys)) == 1 and isinstance(keys[0], bytes), keys
        assert master.load_or_create(path).pseudonym_key == keys[0]
        assert sorted(p.name for p in path.parent.iterdir()) == ["privacy-key"]  # no draft left
        assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_new_master_key_file_is_made_durable_name_and_all(tmp_path, monkeypatch):
    """Learner keys wrapped with a new master key are committed to
    PostgreSQL right after: the file's name (its directory entry) must
    survive a power cut as its bytes do, or the next start makes another
    key and nothing sealed opens again."""
    path = tmp_path / "keys" / "privacy-key"
    synced = []
    fsync = os.fsync

    def recording_fsync(fd):
        info = os.fstat(fd)
        synced.append((info.st_ino, info.st_dev, os.path.exists(path)))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    master.load_or_create(path)
    directory = os.stat(path.parent)
    assert (directory.st_ino, directory.st_dev, True) in synced, synced


def test_a_master_key_is_made_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    """Some mounted volumes (FAT, SMB shares) refuse hard links: the key
    file is still made there, private, once, without a draft left over."""
    import errno

    def no_link(source, target):
        raise OSError(errno.EPERM, "Operation not permitted", source, None, target)

    monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "privacy-key"
    first = master.load_or_create(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert master.load_or_create(path).pseudonym_key == first.pseudonym_key
    assert [p.name for p in tmp_path.iterdir()] == ["privacy-key"]


def test_a_key_file_found_empty_is_read_once_its_maker_has_written_it(tmp_path):
    """Without hard links the file is created, then written: a process
    starting a moment later may find it empty, and must not fail on it."""
    import base64
    import threading
    import time

    path = tmp_path / "privacy-key"
    path.touch(mode=0o600)
    secret = os.urandom(32)

    def write_later():
        time.sleep(0.1)
        path.write_text(base64.b64encode(secret).decode() + "\n")

    writer = threading.Thread(target=write_later)
    writer.start()
    try:
        assert master.load_or_create(path).key_id == master.MasterKey(secret).key_id
    finally:
        writer.join()


def test_a_key_file_of_the_wrong_length_is_refused_with_its_path_on_one_line(tmp_path):
    import base64

    path = tmp_path / "privacy-key"
    path.write_text(base64.b64encode(b"short").decode() + "\n")
    with pytest.raises(master.PrivacyKeyError, match="privacy-key") as refused:
        master.load_or_create(path)
    assert "\n" not in str(refused.value)


_KILLED_MID_START = """
import os, sys, time
from pathlib import Path
from lrs.privacy import master

os.link = lambda source, target: time.sleep(3600)  # killed here: the draft is written, not yet linked or removed
master.load_or_create(Path(sys.argv[1]))
"""


def test_a_draft_left_by_a_start_killed_mid_way_is_removed_at_a_later_start_once_stale(tmp_path):
    """``kill -9`` while the first start makes the key leaves its draft (a
    secret) next to the key file for good.  A later start removes drafts
    old enough that no start can still be writing them, and only those."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    path = tmp_path / "privacy-key"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MID_START, str(path)],
                             cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        drafts: list = []
        while time.monotonic() < deadline:
            drafts = [p for p in tmp_path.iterdir() if p.name.startswith(".privacy-key.")]
            if drafts and drafts[0].read_text().endswith("\n"):
                break
            assert child.poll() is None, "the starting process ended before making its draft"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    [draft] = drafts
    assert not path.exists()

    key = master.load_or_create(path)  # a start right after: the draft may be another start's, kept
    assert draft.exists()
    unrelated = tmp_path / ".privacy-key.backup-2025"  # not a draft's name: never touched
    unrelated.write_text("kept")
    old = time.time() - master.STALE_DRAFT_AGE - 5
    os.utime(draft, (old, old))
    os.utime(unrelated, (old, old))
    assert master.load_or_create(path).key_id == key.key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == [".privacy-key.backup-2025", "privacy-key"]
