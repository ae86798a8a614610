"""A database or NATS URL as output and logs show it: without its passwords.

The two kinds of URL the LRS is given put commas in different places, and a
comma decides what is a password:

* a PostgreSQL URL has one user and one or more hosts
  (``postgresql://lrs:pa,ss@db1:5432,db2:5433/lrs``, libpq's multi-host
  form): the password is everything between the user and the last ``@``
  before the path, commas included; a ``password=`` parameter is hidden too;
* a NATS URL is a comma-separated list of servers, each with its own user and
  with or without a scheme (``nats://relay:p1@a:4222,relay:p2@b:4222``): each
  server is hidden on its own.

Pure; used by the core's start-up messages and logs and by ``lrs forward``.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

_HIDDEN = "***"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` (a PostgreSQL URL, or a comma-separated list of NATS server
    URLs) with each password shown as ``***``."""
    if url.lower().startswith(_POSTGRES_SCHEMES):
        return _PASSWORD_PARAMETER.sub(rf"\g<1>{_HIDDEN}", _without_userinfo_password(url))
    return ",".join(_without_userinfo_password(server) for server in url.split(","))


def _without_userinfo_password(url: str) -> str:
    """One URL with the password of its ``user:password@`` shown as ``***``:
    the userinfo ends at the last ``@`` before the path, query or fragment
    (as urllib reads it), the user at its first ``:``."""
    scheme_end = url.find("://")
    start = 0 if scheme_end < 0 else scheme_end + 3
    end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    at = url.rfind("@", start, end)
    colon = url.find(":", start, at) if at >= 0 else -1
    if colon < 0:
        return url
    return f"{url[:colon + 1]}{_HIDDEN}{url[at:]}"
