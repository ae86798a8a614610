"""Organisational units and the roster: who is in which unit when.

- ``roster``: units and memberships from JSON/CSV, validated (pure)
- ``store``: units, memberships and per-unit certification counts in Postgres
"""
