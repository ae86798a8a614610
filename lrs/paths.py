"""Locations of the language-neutral contracts kept under ``schemas/``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = ROOT / "schemas"
POSTGRES_MIGRATIONS_DIR = SCHEMAS_DIR / "postgres"
NATS_SCHEMAS_DIR = SCHEMAS_DIR / "nats"
