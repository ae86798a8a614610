"""The language-neutral contracts, installed as the package ``lrs_schemas``.

Migrations (``postgres/``), JetStream definitions (``nats/``), JSON Schemas
(``json/``), the OpenAPI document and competency frameworks are data, read
through ``importlib.resources`` (see ``lrs/contracts.py``); this file only
makes the directory a package.
"""
