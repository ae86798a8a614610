"""Connectors: bring statements into an LRS from other platforms and LRSs.

Connectors are clients of the LRS.  They write through its HTTP xAPI API like
any learning platform does, so the LRS stays the single validator and write
path; nothing here imports ``lrs``.
"""
