"""Organisational units and the roster: who is in which unit when.

- ``roster``: units and memberships from JSON/CSV, validated (pure)
- ``store``: units, memberships and per-unit certification counts in Postgres
- ``migrations``: the SQL of its tables, applied in version order with the
  core's (the composition root, lrs/service.py, hands them to lrs.store.migrations)
"""

from importlib.resources import files
from importlib.resources.abc import Traversable

MIGRATIONS: Traversable = files(__name__) / "migrations"
