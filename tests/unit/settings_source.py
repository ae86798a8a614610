"""The text of the modules that read the service's ``LRS_*`` settings, for the
tests that check a deployment file sets only names the service reads."""

from pathlib import Path

from lrs import config, oidc_settings

SETTINGS_MODULES = (config, oidc_settings)


def settings_source() -> str:
    return "\n".join(Path(module.__file__).read_text() for module in SETTINGS_MODULES)
