"""How a setting's text becomes a value: :class:`ConfigError`, and the
readers of integers, numbers, booleans, choices and ``key:secret``
credentials from the environment that lrs.config and lrs.oidc_settings share
(each refusal names the variable)."""

from __future__ import annotations

from typing import Mapping


class ConfigError(ValueError):
    """A configuration value is malformed; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _at_most(value: int, maximum: int, name: str) -> int:
    if value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _nonnegative(value: float, name: str) -> float:
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _positive(value: float, name: str) -> float:
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number > 0, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _one_of(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The value of ``name``, one of ``choices`` (the first when unset)."""
    raw = env.get(name)
    value = (raw or "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, got {raw!r}")
    return value


def _credential(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None:
        key, sep, secret = raw.partition(":")
        if not (sep and key and secret):
            raise ConfigError(f"{name} must look like key:secret")
    return raw
