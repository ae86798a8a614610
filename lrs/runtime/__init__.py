"""The embedded default: private PostgreSQL and nats-server processes.

- ``lrs.runtime.embedded.embedded_services(settings)`` yields
  ``(database_url, nats_url)``, starting a server for each URL not configured.
- ``lrs.runtime.postgres.EmbeddedPostgres`` and ``lrs.runtime.nats.EmbeddedNats``
  run one server each under a data directory; the tests use them directly.
"""
