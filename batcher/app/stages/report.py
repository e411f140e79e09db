"""The report stage: the report written from the ledger (or, for a plan, its rows only
counted), its rows tallied for the summary, the file tied to the run; the rejects file."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from batcher.app.keeping import hold_earlier
from batcher.app.rendering import EXAMPLES, NOT_SENT, Split, Tally, render
from batcher.app.result import TOP_REASONS, Example
from batcher.domain.errors import NothingToSendError, StateError
from batcher.domain.fields import STATUS
from batcher.domain.models import Cell, Inert, Status
from batcher.reports.formats import RowSource, write_rows
from batcher.state import Ledger

__all__ = ["Reported", "refuse_all_invalid", "report", "tallied", "unwritable"]

_QUOTED = re.compile(r'"[^"]*"')


@dataclass(frozen=True)
class Reported:
    """The report's rows by status, the uncertain ones, the most common reasons of `failed` and
    `error` rows, the first rows never sent (examples), the failed rows a rerun may settle; the
    SHA-256 of the report written and the run's latest complete report (None while no report
    of the run is complete); the rejects file written."""

    counts: Counter[Status] = field(default_factory=Counter)
    uncertain: int = 0
    reasons: list[tuple[Status, str, int]] = field(default_factory=list)
    examples: Mapping[Status, list[Example]] = field(default_factory=dict)
    retryable_failed: int = 0
    report_sha256: str | None = None
    latest_complete_report: str | None = None
    rejects_path: Path | None = None

    @classmethod
    def of(cls, tally: Tally) -> Reported:
        """What `tally` counted of the rows so far."""
        return cls(
            counts=Counter({Status(status): n for status, n in tally.counts.items()}),
            uncertain=tally.uncertain,
            reasons=[
                (Status(status), text, n)
                for (status, text), n in tally.reasons.most_common(TOP_REASONS)
            ],
            examples={Status(status): found for status, found in tally.examples.items()},
        )


def report(
    ledger: Ledger,
    report_path: Path | None,
    message: str,
    pending: Mapping[str, str],
    *,
    rejects: Path | None,
    summary: Callable[[Reported], Mapping[str, object]],
    split: Split | None,
    notify: Callable[[str], None],
    warn: Callable[[str], None] | None = None,
) -> Reported:
    """Render the report (or, for a plan, only count) and keep it in the run's record; write
    the rejects file if asked. A partial report never silently replaces another run's complete
    one: that one is kept beside it (`batcher.app.keeping`), and `warn` says so.

    Rows never sent get `message`, or their location's own in `pending` (daily quota);
    `summary` gives the facts of an XLSX report's Summary sheet once every row is counted;
    `split` lets a large report be written by two processes (see `batcher.app.rendering`).
    """
    earlier = None
    if report_path is not None and not ledger.scratch:
        earlier = hold_earlier(report_path)
    try:
        reported = tallied(
            ledger, report_path, message, pending, summary=summary, split=split, notify=notify
        )
    except BaseException:
        if earlier is not None:
            earlier.release()  # not replaced: a report is written whole or not at all
        raise
    if earlier is not None:
        partial = bool(reported.counts[Status.PENDING])
        earlier.settle(ledger.path.parent, ledger.run_id, partial=partial, warn=warn or notify)
    if reported.counts[Status.FAILED]:
        reported = dataclasses.replace(reported, retryable_failed=ledger.retryable_failed())
    if report_path is not None:
        reported = _keep_report(ledger, report_path, reported)
    if rejects is not None:
        write_rejects(rejects, ledger, message, pending)
        reported = dataclasses.replace(reported, rejects_path=rejects)
    return reported


def tallied(
    ledger: Ledger,
    report_path: Path | None,
    message: str,
    pending: Mapping[str, str],
    *,
    summary: Callable[[Reported], Mapping[str, object]],
    split: Split | None,
    notify: Callable[[str], None],
) -> Reported:
    """The report rendered (or, for a plan, only counted), its rows tallied: `report`'s first
    half (benchmarks/report_stage.py times it alone)."""
    tally = Tally()
    if report_path is None:  # a plan: no rows to render, only to count and show a few
        _count(ledger, tally)
        return Reported.of(tally)
    try:
        render(
            report_path,
            ledger,
            message,
            pending,
            tally,
            summary=lambda: summary(Reported.of(tally)),
            split=split,
            notify=notify,
        )
    except OSError as exc:
        raise unwritable(report_path, exc) from exc
    return Reported.of(tally)


def _count(ledger: Ledger, tally: Tally) -> None:
    """A plan's tally: rows by status from the ledger's indexes, and the first rows never sent."""
    tally.counts.update(ledger.status_counts())
    for status in NOT_SENT:
        tally.examples[status.value] = [
            Example(row, line, contact, message)
            for row, line, contact, message in ledger.first_rows(status.value, EXAMPLES)
        ]


def _keep_report(ledger: Ledger, path: Path, reported: Reported) -> Reported:
    """Record the report this command wrote in the run's ledger, with its bytes' SHA-256 (it
    is written and synced): what ties the file to the run (`batcher undo REPORT` finds the run
    by it), and which report is the run's latest complete one."""
    digest = _sha256_of(path)
    rows = sum(reported.counts.values())
    ledger.record_report(
        path, rows=rows, complete=not reported.counts[Status.PENDING], sha256=digest
    )
    complete = [kept.path for kept in ledger.reports() if kept.complete]
    return dataclasses.replace(
        reported,
        report_sha256=digest,
        latest_complete_report=complete[-1] if complete else None,
    )


def write_rejects(path: Path, ledger: Ledger, message: str, pending: Mapping[str, str]) -> None:
    """The rows that are not sent (invalid, duplicate), with the report's columns."""
    kinds = {status.value for status in NOT_SENT}

    def source(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
        for cells in ledger.report_rows(message, pending, inert):
            if cells[STATUS] in kinds:
                yield cells

    _write(path, ledger, source)


def refuse_all_invalid(
    ledger: Ledger, shown_input: Path, report_path: Path | None, rejects: Path | None, message: str
) -> NoReturn:
    """Every row is invalid: nothing would be sent, which is never what the user meant (exit 2).

    The report (and the rejects file, if asked: every row is a reject) is written first, so that
    each row's reason can be looked up.
    """
    if rejects is not None:
        write_rejects(rejects, ledger, message, {})
    reasons: Counter[str] = Counter()
    total = 0
    for line in ledger.lines("not sent"):
        total += 1
        # A row's problems are joined by "; ", which no problem holds (batcher.loading).
        for problem in line.message.split("; "):
            reasons[_QUOTED.sub('"…"', problem)] += 1
    if report_path is not None:
        _write(report_path, ledger, lambda inert: ledger.report_rows("not sent", inert=inert))
        ledger.record_report(report_path, rows=total, complete=True, sha256=_sha256_of(report_path))
    top = "; ".join(f"{reason} ({n:,} rows)" for reason, n in reasons.most_common(TOP_REASONS))
    where = f" (each row's reason is in {report_path})" if report_path is not None else ""
    raise NothingToSendError(
        f"{shown_input}: all {total:,} rows are invalid, nothing to send: {top}{where}"
    )


def _sha256_of(path: Path) -> str:
    """The SHA-256 of a report just written (about 0.06 s per 100 MB, from the page cache)."""
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise unwritable(path, exc) from exc


def _write(report_path: Path, ledger: Ledger, rows: RowSource) -> None:
    try:
        write_rows(report_path, ledger.columns, rows)
    except OSError as exc:
        raise unwritable(report_path, exc) from exc


def unwritable(report_path: Path, exc: OSError) -> StateError:
    """The stop when the report cannot be written: every outcome is in the ledger, so the next
    run of the command writes it."""
    return StateError(
        f"{report_path}: cannot write the report ({exc.strerror or exc})",
        advice="every outcome is saved: run the same command again to write it",
    )
