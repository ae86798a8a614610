"""Rendering a console page: the template's own values plus what every page shows."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web

from lrs.console import dates, guard, i18n
from lrs.console.gap_reasons import gap_reason
from lrs.console.projection_reasons import projection_reason
from lrs.http.middleware import CREDENTIAL, RETRY_AFTER_UNAVAILABLE_S

log = structlog.get_logger("lrs.console")


def page_context(request: web.Request) -> dict[str, Any]:
    language = request.get(guard.LANGUAGE, i18n.DEFAULT)
    credential = request.get(CREDENTIAL)
    session = request.get(guard.SESSION)
    return {
        "t": i18n.translator(language),
        "lang": language,
        "languages": i18n.LANGUAGES,
        "credential": credential,
        "csrf": session.csrf_token if session is not None else "",
        "can": (lambda name, method="GET": credential is not None and guard.may_open(credential, name, method)),
        "here": request.path_qs,
        "local": lambda texts: i18n.local_text(texts, language),
        "reason": lambda gap: gap_reason(gap, language),
        "when": lambda value: dates.when(value, language),
        "day": lambda value: dates.day(value, language),
        "state_word": lambda state: i18n.projection_state_word(state, language),
        "state_reason": lambda why: projection_reason(why, language),
        "freshness": request.get(guard.FRESHNESS),
    }


def render(name: str, request: web.Request, context: dict[str, Any], *, status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(name, request, {**page_context(request), **context}, status=status)


def render_message(request: web.Request, status: int, *, key: str | None = None, text: str = "") -> web.Response:
    """An error page: a message of the catalogue (``key``), or for a given
    English text (an API query's error) the catalogue's message for its
    status with the text as its detail (:func:`error_page`)."""
    if key is None:
        return error_page(request, status, text)
    return render("error.html", request, {"message_key": key, "detail": ""}, status=status)


def status_message(status: int) -> str:
    """The catalogue's message (lrs.console.i18n) for an error status (pure)."""
    if status == 404:
        return "not_found"
    if status == 403:
        return "forbidden"
    return "bad_request" if status < 500 else "unavailable"


def error_page(request: web.Request, status: int, text: str) -> web.Response:
    """An error page for an error the API's code words in English: the page
    says what happened in the page's language.  A 4xx's text names what the
    request asked for (a unit, a parameter), so it stays as the detail; a
    5xx's may name the server's files or settings, so it goes to the log.
    A 503 says when to come back, as the API's do (lrs.http.middleware)."""
    detail = text
    if status >= 500:
        log.warning("console.unavailable", status=status, path=request.path, reason=text)
        detail = ""
    response = render("error.html", request, {"message_key": status_message(status), "detail": detail}, status=status)
    if status == 503:
        response.headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE_S
    return response

