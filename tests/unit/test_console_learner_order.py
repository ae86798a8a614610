"""The unit page lists learners by what it shows, not by the projection's key."""

from __future__ import annotations

from lrs.console.learner_order import PAGE_SIZE, by_shown, page_of


def row(learner: str | None, key: str, erased: bool = False) -> dict:
    return {"learner": learner, "key": key, **({"erased": True} if erased else {})}


def test_learners_go_by_the_identifier_shown_then_by_key_then_erased() -> None:
    rows = [row("mbox:mailto:b@x.vn", "p:1"), row(None, "p:0", erased=True), row("mbox:mailto:A@x.vn", "p:9"),
            row(None, "p:5"), row("mbox:mailto:c@x.vn", "p:3")]
    assert [r["key"] for r in by_shown(rows)] == ["p:9", "p:1", "p:3", "p:5", "p:0"]


def test_every_learner_is_cut_into_pages_in_that_order() -> None:
    rows = [row(f"mbox:mailto:{n:03}@x.vn", f"p:{999 - n}") for n in range(PAGE_SIZE + 3)]
    first = page_of({"learners": rows[::-1], "next_after": None}, 0)
    assert first["learners"] == rows[:PAGE_SIZE] and first["next_from"] == PAGE_SIZE
    last = page_of({"learners": rows, "next_after": None}, PAGE_SIZE)
    assert last["learners"] == rows[PAGE_SIZE:] and last["next_from"] is None
