"""The PostgreSQL adapter: migrations, the group-commit writer and the reads.

All SQL of the service lives in this package, each module's at its top.
"""

from lrs.store.migrations import apply_migrations
from lrs.store.pool import create_pool
from lrs.store.writer import AppendResult, StatementWriter, WriterClosedError

__all__ = ["AppendResult", "StatementWriter", "WriterClosedError", "apply_migrations", "create_pool"]
