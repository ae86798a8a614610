"""The embedded default: private PostgreSQL and nats-server processes.

- ``lrs.runtime.embedded.embedded_runtime(settings, supervise=...)`` starts a
  server for each URL not configured and yields their URLs and supervisors;
  ``embedded_services(settings)`` yields just ``(database_url, nats_url)``.
- ``lrs.runtime.postgres.EmbeddedPostgres`` and ``lrs.runtime.nats.EmbeddedNats``
  run one server each under a data directory; the tests use them directly.
- ``lrs.runtime.datadir`` lets one process at a time run a data directory's
  servers; ``lrs.runtime.supervision`` restarts a server that dies.
"""
