"""What a lost answer leaves unknown: which report rows are `uncertain`, and what can be said.

An attempt is *exposed* when it may have reached the API without its answer reaching batcher
(`ApiError.exposed`: a timeout or a connection lost once the request was written, a 5xx, an
unreadable 201). The API may have applied it, and then the next attempt's answer shows the
contact as already changed: the report would say the run changed nothing, and an undo would
leave the change in place. So a row one of whose requests (any part) had an exposed attempt is
`uncertain`, unless the final per-contact answer proves that the lost attempt left the contact
unchanged. The proof, per part (tags compared ignoring case, as HighLevel lower-cases them):

- add: every tag asked for is in `tags_added` (none of them was there before this answer);
- remove: every tag asked for is in `tags_removed` (all of them were still there);
- remove-all: `old_tags` is not empty (the lost attempt removed nothing);
- an `error` answer, no answer at all (`failed`), a row still `pending`: no proof.

An uncertain row's message keeps the API's own and adds, in brackets, what is known: never a
guess presented as the API's answer.
"""

from __future__ import annotations

import json

from batcher.domain.models import Action, Batch, ContactOutcome, Status

__all__ = ["LOST", "NOTE", "judge"]

LOST = "an attempt to send this row may have changed the contact without an answer"
# Added to the message of a row with no answer to go by (failed, pending).
NOTE = f" (uncertain: {LOST})"
_SILENT = "this answer does not say what that attempt did"


def judge(batch: Batch, outcome: ContactOutcome) -> str | None:
    """For a contact of `batch` (one request, or one 50-tag part of a row), some attempt of
    which was exposed: None when `outcome`, the final answer, proves that the lost attempt
    changed nothing; else the row's message, saying what is known."""
    message = outcome.message
    if outcome.status is not Status.SUCCESS:
        known = _SILENT if outcome.status is Status.ERROR else ""
        return _noted(message, known)
    if batch.remove_all:
        if outcome.old_tags:
            return None
        if outcome.old_tags is None:
            return _noted(message, _SILENT)
        return _noted(
            message,
            "it now has no tags, and its tags before the run are unknown: that attempt may "
            "have removed them",
        )
    shown = outcome.tags_added if batch.action is Action.ADD else outcome.tags_removed
    if shown is None:
        return _noted(message, _SILENT)
    seen = {tag.casefold() for tag in shown}
    unseen = [tag for tag in batch.tags if tag.casefold() not in seen]
    if not unseen:
        return None
    if batch.action is Action.ADD:
        known = (
            f"it now has every tag asked for, but had {_listed(unseen)} before this answer: "
            "added by that attempt, or there before the run"
        )
    else:
        known = (
            f"it now has none of the tags asked for, but lacked {_listed(unseen)} before this "
            "answer: removed by that attempt, or absent before the run"
        )
    return _noted(message, known)


def _noted(message: str, known: str) -> str:
    said = f"(uncertain: {LOST}{'; ' + known if known else ''})"
    return f"{message} {said}" if message else said


def _listed(tags: list[str]) -> str:
    return json.dumps(tags, ensure_ascii=False, separators=(",", ":"))
