"""The NATS permissions each role gets (lrs.nats.permissions); the server
enforcing them is tested in tests/integration/nats/test_auth.py."""

from __future__ import annotations

from lrs.nats.permissions import PROJECTION_CONSUMERS, consumer_subjects, projection_consumer, role_permissions
from lrs.service import projections_to_run
from projections import jetstream_loop


def test_every_projection_the_lrs_runs_has_its_consumer_listed() -> None:
    # The JetStream delivery names a projection's durable consumer through
    # projection_consumer; every projection the root runs must have its
    # consumer granted, and nothing else is granted.
    assert jetstream_loop.projection_consumer is projection_consumer
    assert set(PROJECTION_CONSUMERS) == {projection_consumer(p.name) for p in projections_to_run()}


def test_named_forwarders_get_only_their_own_consumers() -> None:
    permissions = role_permissions("forward", user="forward-crm", forwarders=["crm"])
    allowed = permissions["publish"]["allow"]
    assert set(consumer_subjects("crm")) <= set(allowed)
    assert not [s for s in allowed if "projection-" in s or ".*" in s.replace("$JS.ACK.*.*", "")]
    assert "deny" not in permissions["publish"]
    assert permissions["subscribe"] == {"allow": ["_INBOX.forward-crm.>"]}


def test_roles_never_delete_consumers_nor_change_the_stream() -> None:
    for role in ("relay", "projection", "forward", "service"):
        allowed = role_permissions(role)["publish"]["allow"]
        assert not [s for s in allowed if ".DELETE." in s and "LRS_FORWARD_DLQ" not in s], role
        assert not [s for s in allowed if "STREAM.UPDATE" in s or "STREAM.PURGE" in s], role


def test_the_cluster_configuration_gives_the_service_user_its_role() -> None:
    from pathlib import Path

    conf = (Path(__file__).parents[3] / "docs" / "deploy" / "nats" / "cluster.conf").read_text()
    block = conf[conf.index("user: service"):conf.index("user: admin")]
    quoted = {line.strip().strip('"') for line in block.splitlines() if line.strip().startswith('"')}
    assert quoted == set(role_permissions("service")["publish"]["allow"])
    assert '["_INBOX.service.>"]' in block


def test_the_helm_values_give_the_service_user_its_role() -> None:
    from pathlib import Path

    values = (Path(__file__).parents[3] / "docs" / "deploy" / "kubernetes" / "nats-values.yaml").read_text()
    block = values[values.index("- user: service"):values.index("- user: admin")]
    listed = {line.strip()[2:].strip('"') for line in block.splitlines() if line.strip().startswith('- "')}
    assert listed == set(role_permissions("service")["publish"]["allow"])
    assert '["_INBOX.service.>"]' in block
