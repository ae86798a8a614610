"""The xAPI data model: strict, pure validation of Statements (no I/O).

Public entry points:

- ``parse_statements(body, version)`` / ``parse_statement(body, version)``
- ``parse_agent_param(text, path="agent")``
- ``negotiate_version(header)``
- ``XapiError`` (400), ``ConflictError`` (409), ``NotFoundError`` (404)
"""

from lrs.xapi.actors import parse_agent_param
from lrs.xapi.errors import ConflictError, NotFoundError, XapiError
from lrs.xapi.statement import parse_statement, parse_statements
from lrs.xapi.versions import SUPPORTED_VERSIONS, negotiate_version

__all__ = [
    "SUPPORTED_VERSIONS",
    "ConflictError",
    "NotFoundError",
    "XapiError",
    "negotiate_version",
    "parse_agent_param",
    "parse_statement",
    "parse_statements",
]
