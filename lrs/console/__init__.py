"""The web console under ``/console``: pages for officials (progress against
targets) and operators (ingest, relay, projection, credentials, statements).

Server-rendered with aiohttp-jinja2, in Vietnamese and English, mounted as an
aiohttp sub-app by :func:`lrs.console.app.register` (``LRS_CONSOLE_ENABLED``).
Its handlers read through the same query and store functions as the JSON API
(``lrs.store``, and the competency projection's through the port declared in
:mod:`lrs.console.ports`, which the composition root fills): no rule or SQL
of their own besides the sessions table.
"""
