"""Bulk import of xAPI statements from newline-delimited JSON files."""
