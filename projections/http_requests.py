"""What every /competency handler reads of a request and how it answers
(projections/http.py mounts them): the service's keys the handlers read,
the credential's tenant and scope, the query parameters they share, the
learner named in a request as the projection knows it, the identifiers to
show, and the JSON answer with its position and freshness headers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
from aiohttp import web

from lrs.http import keys
from lrs.http.middleware import CREDENTIAL
from lrs.xapi.errors import XapiError
from projections.competency.catalog import Catalog
from projections.supervisor import ObservedProjection, Supervisor
from projections.units.display import DisplayIds, Shown

__all__ = [
    "ADMIN_SCOPE",
    "CATALOG",
    "DISPLAY_IDS",
    "FRAMEWORKS_PROBLEM",
    "FRESHNESS_HEADER",
    "OBSERVED",
    "POSITION_HEADER",
    "READ_SCOPE",
    "SUPERVISOR",
    "flag_parameter",
    "json_answer",
    "limit_parameter",
    "moment_parameter",
    "only_parameters",
    "shown_learners",
    "stored_learner",
    "stored_learner_in",
    "tenant_of",
]

CATALOG = web.AppKey("competency_catalog", Catalog)
FRAMEWORKS_PROBLEM = web.AppKey("competency_frameworks_problem", str)
SUPERVISOR = web.AppKey("competency_supervisor", Supervisor)
OBSERVED = web.AppKey("competency_observed", ObservedProjection)
# Pseudonym keys -> identifiers to show (docs/privacy.md), from the composition root.
DISPLAY_IDS = web.AppKey("competency_display_ids", DisplayIds)
READ_SCOPE = "all/read"
ADMIN_SCOPE = "all"
POSITION_HEADER = "X-LRS-Position"
_ENCODER = msgspec.json.Encoder()


def tenant_of(request: web.Request, scope: str) -> str:
    credential = request[CREDENTIAL]
    if not credential.allows(scope):
        raise XapiError(403, f"credential {credential.key!r} lacks the {scope!r} scope")
    return credential.tenant


def json_answer(payload: dict[str, Any], status: int = 200) -> web.Response:
    response = web.Response(status=status, body=_ENCODER.encode(payload), content_type="application/json")
    if "position" in payload:
        response.headers[POSITION_HEADER] = str(payload["position"])
    if "freshness" in payload:
        response.headers[FRESHNESS_HEADER] = payload["freshness"]["state"]
    return response


def only_parameters(request: web.Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise XapiError(400, f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def flag_parameter(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise XapiError(400, f"{name} must be true or false, got {raw!r}", name)


def moment_parameter(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise XapiError(400, f"{name} must be an ISO 8601 date-time, got {raw!r}", name) from None
    try:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except OverflowError:
        raise XapiError(400, f"{name} {raw!r} is outside the years 1-9999 in UTC", name) from None


FRESHNESS_HEADER = "X-LRS-Freshness"


def stored_learner_in(request: web.Request, tenant: str, learner: str) -> str:
    return stored_learner(request.config_dict.get(keys.LEARNER_KEYS), tenant, learner)


def stored_learner(learner_keys: Any, tenant: str, learner: str) -> str:
    """The key the projection knows ``learner`` by: with personal data
    sealed (docs/privacy.md) the identifier's pseudonym, which the path may
    also give directly (an erased learner's statements show it)."""
    if learner_keys is None or learner.startswith("account:https://lrs.invalid/"):
        return learner.replace("account:https://lrs.invalid/erased|", "account:https://lrs.invalid/pseudonym|", 1)
    return learner_keys.pseudonym_key(tenant, learner)


async def shown_learners(config: Any, pool: Any, tenant: str, learners: Any) -> dict[str, Shown]:
    """The identifiers to show for ``learners`` (projection keys), one batch."""
    display = config.get(DISPLAY_IDS) or DisplayIds()
    return await display.shown(pool, config.get(keys.LEARNER_KEYS), tenant, learners)


def limit_parameter(request: web.Request, default: int, most: int) -> int:
    raw = request.query.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise XapiError(400, f"limit must be an integer, got {raw!r}", "limit") from None
    if not 1 <= limit <= most:
        raise XapiError(400, f"limit must be between 1 and {most}", "limit")
    return limit
