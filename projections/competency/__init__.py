"""The competency projection: each learner's competency state and certifications.

- ``frameworks``: framework, programme and alignment documents (schemas/frameworks/)
- ``catalog``: the loaded documents, cross-checked and indexed for the rules
- ``model``: the state and the events it folds (immutable msgspec Structs)
- ``policy``: the pure rules: statement -> evidence -> state, named in one place
  from ``judgement`` (statement -> evidence), ``mastery`` (evidence -> a
  competency's levels, a programme's certification) and ``learner_fold``
  (a learner's state under events)
- ``store``: the state in Postgres, applied by ``projections.runner``
- ``migrations``: the SQL of its tables, applied in version order with the
  core's (the composition root, lrs/service.py, hands them to lrs.store.migrations)
"""

from importlib.resources import files
from importlib.resources.abc import Traversable

MIGRATIONS: Traversable = files(__name__) / "migrations"
