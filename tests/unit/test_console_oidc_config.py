"""The console's OIDC sign-in: its settings and the PKCE challenge (pure)."""

from __future__ import annotations

import pytest

from lrs.config import ConfigError
from lrs.oidc_settings import ConsoleOidcSettings
from lrs.console.oidc_signin import pkce_challenge

ISSUER = {"LRS_OIDC_ISSUER": "https://id.example.gov"}


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636, appendix B.
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_off_without_a_client_id() -> None:
    assert ConsoleOidcSettings.from_env(ISSUER) is None


def test_settings_from_the_environment() -> None:
    settings = ConsoleOidcSettings.from_env({
        **ISSUER, "LRS_CONSOLE_OIDC_CLIENT_ID": "lrs-console", "LRS_CONSOLE_OIDC_CLIENT_SECRET": "s",
        "LRS_CONSOLE_OIDC_PROVIDER_NAME": "VNeID", "LRS_CONSOLE_OIDC_SCOPES": "openid profile agency",
    })
    assert settings is not None
    assert (settings.client_id, settings.client_secret, settings.provider_name) == ("lrs-console", "s", "VNeID")
    assert settings.scopes == ("openid", "profile", "agency") and settings.authorization_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LRS_CONSOLE_OIDC_CLIENT_ID": "c"}, "needs LRS_OIDC_ISSUER"),
        ({**ISSUER, "LRS_CONSOLE_OIDC_CLIENT_ID": "c", "LRS_CONSOLE_OIDC_AUTHORIZATION_URL": "https://a"},
         "LRS_CONSOLE_OIDC_TOKEN_URL"),
        ({**ISSUER, "LRS_CONSOLE_OIDC_CLIENT_ID": "c", "LRS_CONSOLE_OIDC_SCOPES": "profile"}, "must include openid"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConsoleOidcSettings.from_env(env)
