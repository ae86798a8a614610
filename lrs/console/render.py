"""Rendering a console page: the template's own values plus what every page shows."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from lrs.console import guard, i18n
from lrs.http.middleware import CREDENTIAL


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
        "freshness": request.get(guard.FRESHNESS),
    }


def render(name: str, request: web.Request, context: dict[str, Any], *, status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(name, request, {**page_context(request), **context}, status=status)


def render_message(request: web.Request, status: int, *, key: str | None = None, text: str = "") -> web.Response:
    """An error page: a message of the catalogue (``key``) or a given text (e.g. a query's error)."""
    return render("error.html", request, {"message_key": key, "text": text}, status=status)

