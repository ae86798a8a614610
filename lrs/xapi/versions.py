"""The X-Experience-API-Version header (Communication 3.3)."""

from __future__ import annotations

import re

from lrs.xapi.errors import XapiError

__all__ = ["SUPPORTED_VERSIONS", "negotiate_version"]

SUPPORTED_VERSIONS = ("1.0.3", "2.0.0")

_V1 = re.compile(r"1\.0(?:\.[0-9]+)?")
_V2 = re.compile(r"2\.0(?:\.[0-9]+)?")


def negotiate_version(header: str | None) -> str:
    """Map a request's version header to the version this LRS follows for it.

    "1.0" and any "1.0.x" follow 1.0.3 (an LRS MUST accept every 1.0.x header);
    "2.0" and "2.0.x" follow 2.0.0.  Anything else is a 400.
    """
    if header is None or not header.strip():
        raise XapiError(400, "The X-Experience-API-Version header is required", "X-Experience-API-Version")
    value = header.strip()
    if _V1.fullmatch(value):
        return "1.0.3"
    if _V2.fullmatch(value):
        return "2.0.0"
    raise XapiError(
        400,
        f"Unsupported X-Experience-API-Version {value!r}; supported: 1.0.x and 2.0.x",
        "X-Experience-API-Version",
    )
