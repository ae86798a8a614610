"""The pure parts of ``lrs forward``: filter, failure decisions, message and
dead-letter records, and the JetStream definitions it reads."""

from __future__ import annotations

import json

import msgspec
import pytest

from connectors.forward import definitions
from connectors.forward.model import (
    ERASED_HOME, Action, ForwardFilter, dead_letter_from_message, dead_letter_headers, dead_letter_subject,
    event_from_message, failure_action, one_line, outgoing_statement, refusal_hint, validate_name,
)
from tests.statements import statement

PASSED = "http://adlnet.gov/expapi/verbs/passed"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
UNIT = "http://example.org/unit/1"


def _statement(verb: str = PASSED, obj: dict | None = None) -> dict:
    return statement(
        statement_id="6e3b0b8e-5a5b-4c40-9d0a-3f2f8c1a0b11", mbox="mailto:a@example.org", verb=verb, activity=UNIT,
        **({} if obj is None else {"object": obj}),
        stored="2026-01-01T00:00:00.000Z", authority={"mbox": "mailto:lrs@example.org"},
    )


def _headers(**overrides: str) -> dict[str, str]:
    headers = {"Nats-Msg-Id": "0b0c1f5e-0000-4000-8000-000000000001", "Lrs-Position": "42",
               "Lrs-Tenant": "default", "Lrs-Event-Type": "statement", "Lrs-Stored": "2026-01-01T00:00:00Z"}
    headers.update(overrides)
    return headers


def test_empty_filter_selects_everything():
    assert ForwardFilter().matches("any", _statement())
    assert ForwardFilter().describe() == "every statement"


def test_filter_values_are_alternatives_and_options_must_all_match():
    selection = ForwardFilter.of(verbs=[PASSED, "http://x/completed"], activities=[UNIT, "http://x/2"],
                                 tenants=["default"])
    assert selection.matches("default", _statement())
    assert selection.matches("default", _statement("http://x/completed", {"objectType": "Activity", "id": "http://x/2"}))
    assert not selection.matches("other", _statement())
    assert not selection.matches("default", _statement("http://x/experienced"))
    assert not selection.matches("default", _statement(obj={"id": "http://x/3"}))


def test_activity_filter_matches_only_activity_objects():
    selection = ForwardFilter.of(activities=[UNIT])
    assert not selection.matches("default", _statement(obj={"objectType": "Agent", "mbox": "mailto:x@y.z"}))
    assert not selection.matches("default", _statement(VOIDED, {"objectType": "StatementRef", "id": UNIT}))
    assert not selection.matches("default", {"verb": {"id": PASSED}})  # no object at all


def test_filter_tolerates_malformed_statements():
    assert not ForwardFilter.of(verbs=[PASSED]).matches("default", {"verb": "not an object"})
    assert not ForwardFilter.of(activities=[UNIT]).matches("default", {"object": [UNIT]})


@pytest.mark.parametrize(
    ("status", "deliveries", "expected"),
    [
        (None, 1, Action.WAIT),  # unreachable
        (None, 99, Action.WAIT),  # an outage never counts against a statement
        (502, 1, Action.WAIT),
        (503, 7, Action.WAIT),
        (504, 1, Action.WAIT),
        (429, 9, Action.WAIT),  # throttled for longer than the sink waits: the target's load, not the statement
        (400, 1, Action.PARK),  # the target refuses the statement itself
        (409, 1, Action.PARK),
        (413, 1, Action.PARK),
        (500, 1, Action.RETRY),
        (500, 4, Action.RETRY),
        (500, 5, Action.PARK),
        (507, 6, Action.PARK),
    ],
)
def test_failure_action(status, deliveries, expected):
    assert failure_action(status, deliveries, max_deliveries=5) is expected


def test_event_from_message_reads_headers_and_statement():
    data = msgspec.json.encode(_statement())
    event = event_from_message(_headers(), data)
    assert (event.position, event.tenant, event.event_type) == (42, "default", "statement")
    assert event.statement_id == _statement()["id"]
    assert event.payload == data


@pytest.mark.parametrize(
    ("headers", "data", "message"),
    [
        ({}, b"{}", "Nats-Msg-Id"),
        ({k: v for k, v in _headers().items() if k != "Lrs-Tenant"}, b"{}", "Lrs-Tenant"),
        (_headers(), b"{not json", "not JSON"),
        (_headers(), b"[1, 2]", "not a statement object"),
    ],
)
def test_event_from_message_refuses_foreign_messages(headers, data, message):
    with pytest.raises(ValueError, match=message):
        event_from_message(headers, data)


def test_dead_letter_headers_round_trip():
    data = msgspec.json.encode(_statement())
    event = event_from_message(_headers(), data)
    headers = dead_letter_headers(event, name="to-b", status=400, error="bad\r\nverb  here", deliveries=3,
                                  target="http://b/xapi/statements", parked_at="2026-01-02T00:00:00.000+00:00")
    assert headers["Nats-Msg-Id"] == f"to-b:{event.event_id}"  # parking twice is deduplicated
    assert headers["Lrs-Forward-Error"] == "bad verb here"  # header-safe, one line
    letter = dead_letter_from_message(7, dead_letter_subject("to-b"), headers, data)
    assert letter.as_json() == {
        "sequence": 7, "forwarder": "to-b", "statement_id": event.statement_id, "position": 42,
        "tenant": "default", "status": 400, "error": "bad verb here", "deliveries": 3,
        "target": "http://b/xapi/statements", "parked_at": "2026-01-02T00:00:00.000+00:00",
    }
    unreachable = dead_letter_headers(event, name="to-b", status=None, error="x", deliveries=1, target="t",
                                      parked_at="p")
    assert unreachable["Lrs-Forward-Status"] == "0"


def test_dead_letter_from_an_unreadable_payload():
    letter = dead_letter_from_message(1, "lrs.forward.dlq.f", {"Lrs-Forward-Error": "unreadable"}, b"\xff")
    assert (letter.statement_id, letter.position, letter.status, letter.forwarder) == (None, None, 0, "f")


def test_one_line_limits_length():
    assert one_line("a\nb", limit=500) == "a b"
    assert len(one_line("x" * 2000)) == 500


def test_a_409_on_a_statement_with_an_erased_learner_says_so_and_others_name_the_conflict():
    erased = {"objectType": "Agent", "account": {"homePage": ERASED_HOME, "name": "p-1"}}
    in_a_team = {"actor": {"objectType": "Group", "member": [erased]}, "verb": {"id": "http://x/v"},
                 "object": {"id": "http://x/a"}}
    assert "erased" in (refusal_hint(409, {"actor": erased}) or "")
    assert "erased" in (refusal_hint(409, in_a_team) or "")
    assert refusal_hint(409, _statement()) == "the target holds another statement under this id"
    text_only = {**_statement(), "result": {"response": ERASED_HOME}}  # the address alone is not an erased identity
    assert "erased" not in (refusal_hint(409, text_only) or "")
    assert refusal_hint(400, {"actor": erased}) is None


def test_the_erased_home_page_is_the_one_the_lrs_writes():
    from lrs.privacy.seal import ERASED_HOME as written

    assert ERASED_HOME == written


def test_outgoing_statement_drops_only_stored():
    sent = outgoing_statement(_statement())
    assert "stored" not in sent
    assert sent["authority"] == _statement()["authority"] and sent["id"] == _statement()["id"]


@pytest.mark.parametrize("name", ["forward", "to-lrs_2", "a" * 64])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "a.b", "a*", "a>", "a b", "a" * 65, "é"])
def test_invalid_names(name):
    with pytest.raises(ValueError):
        validate_name(name)


def test_definitions_read_from_schemas():
    consumer = definitions.consumer_config("mine", "new")
    assert consumer.durable_name == "mine" and consumer.deliver_policy == "new"
    assert consumer.ack_policy == "explicit"
    assert consumer.max_deliver == -1  # the forwarder parks; JetStream must never drop silently
    events = json.loads((definitions.NATS_SCHEMAS_DIR / "LRS_EVENTS.json").read_text())
    assert events["name"] == definitions.EVENTS_STREAM
    assert consumer.filter_subject.startswith("lrs.events.") and events["subjects"] == ["lrs.events.>"]
    stream = definitions.dead_letter_stream_config()
    assert stream.name == definitions.DEAD_LETTER_STREAM == "LRS_FORWARD_DLQ"
    assert stream.subjects == ["lrs.forward.dlq.>"] and dead_letter_subject("x").startswith("lrs.forward.dlq.")
    assert stream.deny_delete is False  # replay deletes what the target accepted
    assert stream.duplicate_window == 120


def _forward_cli(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    from lrs.cli import main

    for name in ("LRS_TARGET_URL", "LRS_TARGET_KEY", "LRS_TARGET_SECRET", "LRS_NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LRS_DATA_DIR", "/nonexistent/lrs-data")
    status = main(list(argv))
    return status, capsys.readouterr().err


def test_forward_cli_usage_errors(monkeypatch, capsys):
    status, err = _forward_cli(monkeypatch, capsys, "forward", "--nats-url", "nats://127.0.0.1:1")
    assert status == 2 and "missing --to, --key, --secret" in err
    status, err = _forward_cli(monkeypatch, capsys, "forward", "--to", "http://b", "--key", "k", "--secret", "s")
    assert status == 2 and "no NATS server" in err
    status, err = _forward_cli(monkeypatch, capsys, "forward", "--name", "a.b", "--to", "http://b", "--key", "k",
                               "--secret", "s", "--nats-url", "nats://127.0.0.1:1")
    assert status == 2 and "forwarder name" in err
    status, err = _forward_cli(monkeypatch, capsys, "forward", "dead-letters", "replay",
                               "--nats-url", "nats://127.0.0.1:1")
    assert status == 2 and "missing --to" in err


def test_forward_cli_refuses_a_target_that_is_not_an_http_url(monkeypatch, capsys):
    # Such a target was retried as an outage for ever instead of being named once.
    for target in ("notaurl", "ftp://b/", "http://"):
        status, err = _forward_cli(monkeypatch, capsys, "forward", "--to", target, "--key", "k", "--secret", "s",
                                   "--nats-url", "nats://127.0.0.1:1")
        assert status == 2, (target, err)
        assert err.strip().count("\n") == 0 and "--to" in err and "http" in err, err


def test_forward_cli_target_options_after_the_action_and_before_it(monkeypatch):
    from lrs.cli import build_parser

    for name in ("LRS_TARGET_URL", "LRS_TARGET_KEY", "LRS_TARGET_SECRET"):
        monkeypatch.delenv(name, raising=False)
    parser = build_parser()
    args = parser.parse_args(["forward", "--name", "n1", "dead-letters", "replay", "--to", "http://b",
                              "--key", "k", "--secret", "s", "--seq", "3", "--seq", "5"])
    assert (args.name, args.to, args.target_key, args.target_secret, args.seq) == ("n1", "http://b", "k", "s", [3, 5])
    args = parser.parse_args(["forward", "--to", "http://a", "--verb", "v1", "--verb", "v2", "--tenant", "t"])
    assert args.to == "http://a" and args.verb == ["v1", "v2"] and args.tenant == ["t"]
    assert args.forward_action is None and args.name == "forward"


async def test_statements_are_opened_per_tenant_in_order_and_clear_ones_kept():
    from connectors.forward.forwarder import Forwarder
    from connectors.forward.run import ForwardOptions

    calls: list[tuple[str, list[bytes]]] = []

    async def open_stored(tenant: str, payloads: list[bytes]) -> list[bytes]:
        calls.append((tenant, payloads))
        if tenant == "a":
            return payloads  # nothing sealed: the same objects come back
        return [json.dumps({"id": json.loads(p)["id"], "opened": tenant}).encode() for p in payloads]

    def event(position: int, tenant: str) -> object:
        data = json.dumps({**_statement(), "id": f"s{position}"}).encode()
        return event_from_message(_headers(**{"Lrs-Position": str(position), "Lrs-Tenant": tenant}), data)

    events = [event(1, "a"), event(2, "b"), event(3, "a"), event(4, "b")]
    forwarder = Forwarder("nats://unused", None, ForwardFilter(), ForwardOptions(), None,  # type: ignore[arg-type]
                          open_stored=open_stored)
    opened = await forwarder._opened(events)  # type: ignore[arg-type]
    assert [tenant for tenant, _ in calls] == ["a", "b"]
    assert [len(payloads) for _, payloads in calls] == [2, 2]
    assert opened[0] is events[0].statement and opened[2] is events[2].statement
    assert opened[1] == {"id": "s2", "opened": "b"} and opened[3] == {"id": "s4", "opened": "b"}


def test_forward_status_lines_off_a_terminal_start_after_30_seconds_not_at_the_first_batch(monkeypatch, capsys):
    # The first batch printed the summary at once, so a short run printed the same summary twice.
    from types import SimpleNamespace

    from connectors.forward import cli

    clock = [1000.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    progress = cli._Progress("f", enabled=False)
    stats = SimpleNamespace(forwarded=5, render=lambda: "forwarded 5")
    progress.update(stats)
    assert capsys.readouterr().err == ""
    clock[0] += 31
    stats.forwarded = 6
    progress.update(stats)
    assert capsys.readouterr().err.count("lrs forward: f: forwarded") == 1
