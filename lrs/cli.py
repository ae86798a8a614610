"""The ``lrs`` command line, assembled by the composition root (lrs/service.py).

Each subcommand lives in its own module and registers itself through a
``register(subparsers, ...)`` function, given what it needs by the root.
"""

from __future__ import annotations

from lrs.service import build_parser, main

__all__ = ["build_parser", "main"]
