"""Pure ingest rules: preparing statements for the log, GET parameters, cursors, formats.

- :mod:`lrs.ingest.prepare` — id/authority/version, duplicate ids, index columns
- :mod:`lrs.ingest.model` — :class:`~lrs.ingest.model.PreparedStatement`
- :mod:`lrs.ingest.query` — GET /statements parameters
- :mod:`lrs.ingest.cursor` — signed ``more`` cursors
- :mod:`lrs.ingest.formats` — ``format=exact|ids|canonical``
"""
