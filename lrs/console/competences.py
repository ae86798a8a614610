"""A competence as an official reads it: its code and its title in the page's
language (``4.2 — Bảo vệ dữ liệu cá nhân và quyền riêng tư``), from the
framework documents of the projection's catalogue (pure).

A competence the catalogue does not know is shown by its IRI; one without a
title by its code alone."""

from __future__ import annotations

from typing import Any

from lrs.console.i18n import local_text

__all__ = ["competence_name", "competence_titles"]

# The catalogue changes only when the documents do: the titles of the last one read, by its digest.
_titles: dict[str, dict[str, dict[str, str]]] = {}


def competence_titles(catalog: Any) -> dict[str, dict[str, str]]:
    """Competence IRI -> its title (a language map), for every framework of ``catalog``."""
    known = _titles.get(catalog.digest)
    if known is None:
        known = {
            competence.iri: competence.title
            for document in catalog.documents
            for area in getattr(document, "areas", ())
            for competence in area.competences
        }
        _titles.clear()
        _titles[catalog.digest] = known
    return known


def competence_name(catalog: Any, competency: str, language: str) -> str:
    info = catalog.competencies.get(competency)
    code = info.code if info is not None and info.code else competency
    title = local_text(competence_titles(catalog).get(competency), language)
    return f"{code} — {title}" if title and info is not None else code
