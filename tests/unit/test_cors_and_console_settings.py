"""CORS decisions (lrs.http.cors) and LRS_CORS_ORIGINS parsing, without a server."""

from __future__ import annotations

import pytest

from lrs.config import ConfigError, Settings, parse_cors_origins
from lrs.http.cors import EXPOSED_HEADERS, PreflightRefused, cors_headers, preflight_headers

LMS = "https://lms.example.org"


def test_no_origins_by_default() -> None:
    assert Settings.from_env({}).cors_origins == ()
    assert cors_headers(LMS, ()) == {}


def test_origins_are_parsed_and_checked() -> None:
    assert parse_cors_origins(" https://a.example.org, http://127.0.0.1:8000 ") == (
        "https://a.example.org",
        "http://127.0.0.1:8000",
    )
    assert parse_cors_origins("*") == ("*",)
    for bad in ("https://a.example.org/", "lms.example.org", "ftp://x.org", "*, https://a.org", "https://A.org"):
        with pytest.raises(ConfigError, match="LRS_CORS_ORIGINS"):
            parse_cors_origins(bad)


def test_listed_origin_is_echoed_with_credentials_and_exposed_headers() -> None:
    headers = cors_headers(LMS, (LMS,))
    assert headers["Access-Control-Allow-Origin"] == LMS
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"
    assert headers["Access-Control-Expose-Headers"].split(", ") == list(EXPOSED_HEADERS)


def test_unlisted_origin_gets_no_allow_origin_but_vary() -> None:
    assert cors_headers("https://evil.example.org", (LMS,)) == {"Vary": "Origin"}


def test_star_never_allows_credentials() -> None:
    headers = cors_headers("https://any.example.org", ("*",))
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers
    pre = preflight_headers("https://any.example.org", "PUT", "authorization,content-type", ("*",))
    assert pre["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in pre


def test_preflight_allows_the_xapi_headers_and_methods() -> None:
    pre = preflight_headers(LMS, "POST", "Authorization, Content-Type, X-Experience-API-Version, If-Match, if-none-match", (LMS,))
    assert pre["Access-Control-Allow-Origin"] == LMS
    assert set(pre["Access-Control-Allow-Headers"].split(", ")) == {
        "Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Experience-API-Version",
    }
    assert set(pre["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "POST", "PUT", "DELETE"}
    assert int(pre["Access-Control-Max-Age"]) > 0


@pytest.mark.parametrize(
    ("origin", "method", "headers", "allowed", "message"),
    [
        (LMS, "POST", "", (), "not enabled"),
        ("https://evil.example.org", "POST", "", (LMS,), "https://evil.example.org"),
        (LMS, "PATCH", "", (LMS,), "PATCH"),
        (LMS, "POST", "X-Custom", (LMS,), "X-Custom"),
    ],
)
def test_preflight_refusals_name_the_problem(origin, method, headers, allowed, message) -> None:
    with pytest.raises(PreflightRefused, match=message):
        preflight_headers(origin, method, headers, allowed)


def test_console_settings() -> None:
    assert Settings.from_env({}).console_enabled is True
    assert Settings.from_env({"LRS_CONSOLE_ENABLED": "false"}).console_enabled is False
    assert Settings.from_env({"LRS_CONSOLE_SESSION_TTL_S": "3600"}).console_session_ttl_s == 3600
    for bad in ("0", "10", "nan", "1e12"):
        with pytest.raises(ConfigError, match="LRS_CONSOLE_SESSION_TTL_S"):
            Settings.from_env({"LRS_CONSOLE_SESSION_TTL_S": bad})
