"""The proof rules: when the final answer shows that a lost attempt changed nothing, and what an
uncertain row's message says (batcher.domain.uncertain)."""

from __future__ import annotations

import pytest

from batcher.domain.models import Action, Batch, ContactOutcome, Status
from batcher.domain.uncertain import NOTE, judge

CONTACT = "qFSqySFkVvNzOSqgGqFi"
LOST = "an attempt to send this row may have changed the contact without an answer"


def batch(action: Action = Action.ADD, tags: tuple[str, ...] = ("VIP", "news")) -> Batch:
    return Batch("asdrwHvLUxlfw5SqKVCN", action, tags, not tags, 0, (1,), (CONTACT,))


def answer(
    old: tuple[str, ...] | None = (),
    added: tuple[str, ...] | None = (),
    removed: tuple[str, ...] | None = (),
) -> ContactOutcome:
    return ContactOutcome(Status.SUCCESS, "Tags updated", old, added, removed)


@pytest.mark.parametrize(
    ("asked", "outcome"),
    [
        # add: every tag asked for is in tags_added (ignoring case: HighLevel lower-cases tags)
        (batch(), answer(old=("x",), added=("vip", "news"))),
        # remove: every tag asked for is in tags_removed
        (batch(Action.REMOVE), answer(old=("vip", "news", "x"), removed=("VIP", "News"))),
        # remove-all: the answer found tags to remove
        (batch(Action.REMOVE, ()), answer(old=("a",), removed=("a",))),
    ],
)
def test_an_answer_that_shows_the_lost_attempt_changed_nothing_proves_it(
    asked: Batch, outcome: ContactOutcome
) -> None:
    assert judge(asked, outcome) is None


def test_an_add_whose_answer_found_a_tag_already_there_is_uncertain() -> None:
    """The tag may be from the lost attempt or from before the run: both are said, with the
    tags in question, after the API's own message."""
    said = judge(batch(), answer(old=("vip",), added=("news",)))
    assert said == (
        f"Tags updated (uncertain: {LOST}; it now has every tag asked for, but had "
        '["VIP"] before this answer: added by that attempt, or there before the run)'
    )


def test_a_remove_whose_answer_missed_a_tag_is_uncertain() -> None:
    said = judge(batch(Action.REMOVE), answer(old=("news",), removed=("news",)))
    assert said is not None
    assert said.startswith(f"Tags updated (uncertain: {LOST}; it now has none of the tags")
    assert 'but lacked ["VIP"] before this answer: removed by that attempt' in said


def test_a_remove_all_whose_answer_found_no_tags_is_uncertain() -> None:
    said = judge(batch(Action.REMOVE, ()), answer(old=(), removed=()))
    assert said is not None
    assert "it now has no tags, and its tags before the run are unknown" in said


@pytest.mark.parametrize(
    "outcome",
    [
        ContactOutcome(Status.ERROR, "contact is deleted"),
        ContactOutcome(Status.FAILED, "HTTP 503 (after 6 attempts)"),
        answer(old=None, added=None, removed=None),  # a success that lists nothing
    ],
)
def test_no_answer_to_go_by_proves_nothing(outcome: ContactOutcome) -> None:
    said = judge(batch(), outcome)
    assert said is not None
    assert said.startswith(f"{outcome.message} (uncertain: {LOST}")


def test_a_failed_row_says_no_more_than_that() -> None:
    """No answer: nothing is known beyond the lost attempt (the same note as a pending row)."""
    failed = ContactOutcome(Status.FAILED, "HTTP 502 (after 6 attempts)")
    assert judge(batch(), failed) == failed.message + NOTE
