"""A competence on the console's learner pages: its code and its title in the page's language."""

from __future__ import annotations

from projections.competency.catalog import load_live_catalog

from lrs.console.competences import competence_name

TT02 = "https://lrs.example.org/competency/vn-tt02-2025"


def test_a_competence_is_named_by_its_code_and_title_in_the_pages_language() -> None:
    catalog = load_live_catalog(None)
    (iri,) = [i for i, info in catalog.competencies.items() if info.framework == TT02 and info.code == "4.2"]
    assert competence_name(catalog, iri, "vi") == "4.2 — Bảo vệ dữ liệu cá nhân và quyền riêng tư"
    assert competence_name(catalog, iri, "en") == "4.2 — Protecting personal data and privacy"


def test_a_title_without_the_pages_language_is_english_and_an_unknown_competence_its_iri() -> None:
    catalog = load_live_catalog(None)
    (iri,) = [i for i, info in catalog.competencies.items() if "digcomp" in info.framework and info.code == "4.2"]
    assert competence_name(catalog, iri, "vi") == "4.2 — Protecting personal data and privacy"
    assert competence_name(catalog, "https://example.org/unknown", "vi") == "https://example.org/unknown"
