"""Round trips with real xAPI client libraries against the in-process server on a real port."""

from tests.e2e.conftest import client  # noqa: F401  (re-exported fixture)
