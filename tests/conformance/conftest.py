"""Conformance cases run against the in-process app (the e2e ``client`` fixture)."""

from tests.e2e.conftest import client  # noqa: F401  (re-exported fixture)
