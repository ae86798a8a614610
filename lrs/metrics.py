"""Prometheus metrics outside the HTTP layer (the HTTP layer keeps its own in
``lrs.http.metrics``).  All live in the default registry that ``/metrics`` serves.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram

# -- relay: event log -> JetStream --------------------------------------------
# Labelled by relay name, so a process can run more than one relay.

RELAY_LOG_HEAD = Gauge(
    "lrs_relay_log_head_position", "Last position of the Postgres event log as the relay last saw it", ("relay",)
)
RELAY_PUBLISHED_POSITION = Gauge(
    "lrs_relay_published_position", "Last event position acknowledged by JetStream", ("relay",)
)
RELAY_LAG = Gauge(
    "lrs_relay_lag_events", "Events in the log not yet acknowledged by JetStream (log head - published)", ("relay",)
)
STATEMENT_WRITER_RESTARTS = Counter(
    "lrs_statement_writer_restarts",
    "Times the statement writer's task ended unexpectedly and was started again",
)
RELAY_LEADER = Gauge(
    "lrs_relay_leader", "1 while this process holds the relay's leader lock, else 0", ("relay",)
)
RELAY_NATS_CONNECTED = Gauge(
    "lrs_relay_nats_connected", "1 while the relay's NATS connection is up, else 0", ("relay",)
)
RELAY_MESSAGES = Counter(
    "lrs_relay_messages_published", "Messages acknowledged by JetStream", ("relay", "outcome")
)  # outcome: stored | duplicate (dropped by the stream's Nats-Msg-Id window)
RELAY_PUBLISH_FAILURES = Counter(
    "lrs_relay_publish_failures", "Batches that were not fully acknowledged and will be published again", ("relay",)
)
RELAY_FAILING = Gauge(
    "lrs_relay_failing",
    "1 while the relay's last publish or resync failed (its error is in /ready), else 0",
    ("relay",),
)
RELAY_RESYNCS = Counter(
    "lrs_relay_resyncs", "Times the relay recomputed its resume position from checkpoint and stream", ("relay",)
)

LISTENER_RECONNECTS = Counter(
    "lrs_listener_reconnects",
    "Times a LISTEN connection (commit announcements, credential changes, learner key erasures) was lost and"
    " listens again (lrs.store.listener)",
    ("channel",),
)

# -- group commit: the statement writer ---------------------------------------

GROUP_COMMIT_SECONDS = Histogram(
    "lrs_group_commit_seconds",
    "Duration of one group-commit transaction, from lock to COMMIT",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
LOG_HEAD_LOCK_SECONDS = Histogram(
    "lrs_log_head_lock_seconds",
    "How long one group-commit transaction held the log head lock, from FOR UPDATE to COMMIT (the serial part of ingest)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
GROUP_COMMIT_STATEMENTS = Histogram(
    "lrs_group_commit_statements",
    "Statements written by one group-commit transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
GROUP_COMMIT_GATHERED_EARLY = Counter(
    "lrs_group_commit_gathered_early",
    "Groups committed before LRS_GROUP_COMMIT_WAIT_MS was over, because no other request could join them",
)
GROUP_COMMIT_REQUESTS = Histogram(
    "lrs_group_commit_requests",
    "Append requests decided by one group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

# -- sealing: learner keys -----------------------------------------------------

LEARNER_KEYS_REFUSED = Counter(
    "lrs_learner_keys_refused",
    "Statement requests the group commit refused because a learner key this process made for them was not "
    "the learner's live key (another process made one first, or it was erased); each is sealed again and "
    "sent to a second group commit",
)
LEARNER_KEYS_PROPOSED_AGAIN = Counter(
    "lrs_learner_keys_proposed_again",
    "Learner keys a group commit proposed again because a request was sealed under them before the group's "
    "connection began its session and they were not known to be on disk (a crash may have lost them; "
    "docs/privacy.md \"A key lost in a crash\"): after a restart or a reconnection, never in the steady state",
)
# Each HTTP worker serves its own /metrics: its process id tells them apart
# (bench/ingest.py adds up the workers' counters by it).
PROCESS_ID = Gauge("lrs_process_id", "The id of the process that answered this scrape")
PROCESS_ID.set_function(os.getpid)

# -- projections (set when /ready or /metrics is read) ---------------------------

PROJECTION_STATE = Gauge(
    "lrs_projection_state", "1 for the state the projection is in (current, behind, outdated, ...), else 0",
    ("projection", "state"),
)
PROJECTION_LAG_EVENTS = Gauge(
    "lrs_projection_lag_events", "Events of the log the projection has not applied", ("projection",)
)
PROJECTION_LAG_SECONDS = Gauge(
    "lrs_projection_lag_seconds", "How long ago the first event the projection has not applied was stored",
    ("projection",),
)
PROJECTION_PARKED = Gauge(
    "lrs_projection_parked_events", "Events the projection's rules failed on, set aside", ("projection",)
)
PROJECTION_STATES = ("starting", "running", "current", "behind", "rebuilding", "outdated", "stopped")

# -- embedded servers: supervision by `lrs serve` ------------------------------

EMBEDDED_SERVER_UP = Gauge(
    "lrs_embedded_server_up", "1 while the embedded server runs, 0 while it is being restarted", ("server",)
)
EMBEDDED_SERVER_RESTARTS = Counter(
    "lrs_embedded_server_restarts", "Times the embedded server died and was started again", ("server",)
)
