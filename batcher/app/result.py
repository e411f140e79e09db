"""What a run tells its caller: the result, the confirmation's preview, the progress.

Frozen values: a run's stages each return their own small result (`batcher.app.stages`), and
the `RunResult` is assembled from them once, at the end (`batcher.app.execute`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from batcher.app.credentials import LocationCredential
from batcher.app.sharding import Shard
from batcher.domain.drip import Schedule
from batcher.domain.errors import BatcherError
from batcher.domain.models import RUN_STATUSES, UNDO_STATUSES, Status
from batcher.domain.planning import PlanStats
from batcher.state import Resolution, RunInfo

__all__ = [
    "TOP_OPERATIONS",
    "TOP_REASONS",
    "UNCERTAIN_MEANS",
    "Example",
    "Preview",
    "Progress",
    "RunProgress",
    "RunResult",
    "TagOperation",
    "Tick",
    "pending_message",
]

# The reasons the summary lists for `failed`/`error` rows.
TOP_REASONS = 3
# The distinct operations a plan, the confirmation and the summary list, most rows first.
TOP_OPERATIONS = 5


@dataclass(frozen=True)
class Example:
    """One row that will not be sent, and why: for `plan`'s preflight."""

    row: int
    line: int
    contact_id: str
    message: str


@dataclass(frozen=True)
class TagOperation:
    """One distinct operation of a run: an action and its tag set, and how many rows ask it
    (over every location)."""

    action: str
    tags: tuple[str, ...]
    remove_all: bool
    rows: int

    def __str__(self) -> str:
        if self.remove_all:
            return "remove all tags"
        return f"{self.action} {json.dumps(list(self.tags), ensure_ascii=False)}"


# What the summary says of the rows marked uncertain (see batcher.domain.uncertain).
UNCERTAIN_MEANS = (
    "an attempt to send these rows may have reached the API without an answer and changed "
    "their contacts, so old_tags/tags_added/tags_removed may not show that change; undo "
    "leaves them alone unless told --uncertain revert"
)


@dataclass(frozen=True)
class Preview:
    """What a run is about to send: for the confirmation asked on a terminal.

    `reading`: how the input was read; `operations`: the most frequent distinct operations
    (`operation_count` in all).
    """

    operation: str
    rows: int
    requests: int
    locations: int
    target: str
    least_seconds: float
    reading: str = ""
    operations: tuple[TagOperation, ...] = ()
    operation_count: int = 0
    # Each location's credential and whether it is set (Step 11).
    credentials: tuple[LocationCredential, ...] = ()
    schedule: Schedule | None = None


@dataclass(frozen=True)
class RunProgress:
    """How far a run has got, for a progress display (`execute(on_tick=...)`).

    `least_left_s`: the least time the requests left can take at the rate limit, per location
    (the busiest one's: locations are paced side by side).
    """

    rows_done: int
    rows_total: int
    requests_done: int
    requests_total: int
    retries: int
    rate_limited: int
    elapsed_s: float
    least_left_s: float = 0.0
    # Seconds until the schedule's last request is due, for a run with a drip or a window:
    # its pace is the schedule's, not the pace so far.
    due_in_s: float | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left: with a drip or a window, the schedule's (never less than the rate
        limit allows); else the larger of the pace so far and what the rate limit allows for
        the requests left (a fast start, before the limit bites, promised half the time it
        took); None before there is a pace or a limit to go by."""
        if self.due_in_s is not None:
            return max(self.due_in_s, self.least_left_s)
        rate = self.rows_per_s
        if rate <= 0:
            return self.least_left_s or None
        return max(max(self.rows_total - self.rows_done, 0) / rate, self.least_left_s)


@dataclass(frozen=True)
class RunResult:
    """What happened: for the summary, the exit code and tests. Assembled once, from the
    results of the run's stages (`batcher.app.execute`)."""

    report_path: Path | None
    input_path: Path | None = None
    operation: str = ""
    target: str = ""
    token_source: str = ""
    # Each location's credential and whether it is set, for plan (Step 11).
    credentials: tuple[LocationCredential, ...] = ()
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: Counter[Status] = field(default_factory=Counter)
    plan: PlanStats = field(default_factory=lambda: PlanStats(groups=0, requests=0))
    rounds: int = 0
    locations: int = 0
    # Requests each location needs, busiest first (what `plan` shows, with the daily share).
    per_location: list[tuple[str, int]] = field(default_factory=list)
    least_seconds: float = 0.0
    schedule: Schedule | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    # Where the time went: load, plan, send, report (seconds each).
    stages: dict[str, float] = field(default_factory=dict)
    resumed: bool = False
    stopped: BatcherError | None = None
    # The most common messages of `failed` and `error` rows, most frequent first.
    reasons: list[tuple[Status, str, int]] = field(default_factory=list)
    # Unfinished runs of other inputs in the same state directory.
    others: list[RunInfo] = field(default_factory=list)
    # The shard this run took (None: every row), and, for a plan, the input's rows per location
    # (for `plan --shards N`; empty when the plan continued an unfinished run).
    shard: Shard | None = None
    rows_per_location: Counter[str] = field(default_factory=Counter)
    # The first few rows of each kind never sent (invalid, duplicate), for `plan`.
    examples: dict[Status, list[Example]] = field(default_factory=dict)
    # The file of rows never sent (`rejects=`), and the JSON summary beside the report.
    rejects_path: Path | None = None
    summary_path: Path | None = None
    # How the input was read (format, encoding and why, delimiter or sheet).
    reading: str = ""
    # The distinct operations still to send, most rows first (the first TOP_OPERATIONS), and
    # how many there are in all.
    operations: list[TagOperation] = field(default_factory=list)
    operation_count: int = 0
    # The run's id, and which command of the run this was (1: the one that started it).
    run_id: str = ""
    invocation: int = 0
    # Rows marked uncertain (see batcher.domain.uncertain).
    uncertain: int = 0
    # Failed rows that running the same command again may settle (the others' requests the API
    # refused: they need fixing in the input).
    retryable_failed: int = 0
    # The SHA-256 of the report this command wrote, and the run's latest complete report
    # (None while no report of the run is complete: a row was pending in each).
    report_sha256: str | None = None
    latest_complete_report: str | None = None
    # For an undo: the id of the run it takes back.
    undoes: str | None = None
    # A plan (nothing sent): its exit status is 0 unless it refuses.
    planned_only: bool = False
    # Step 16: the searches (pages) this command made for the rows given by email (read-only
    # requests, counted in `requests` too), and those rows by how they were answered (None:
    # the input has none).
    searches: int = 0
    resolution: Resolution | None = None

    def summary(self, *, final: bool = True) -> dict[str, object]:
        """The summary's facts, JSON-safe: for scripts (the JSON summary file, the
        `run.finished` event) and the report's Summary sheet (`final=False`: before the run's
        time and exit status are known)."""
        statuses = RUN_STATUSES + (UNDO_STATUSES if self.undoes else ())
        facts: dict[str, object] = {
            "run_id": self.run_id,
            "invocation": self.invocation,
            "started": self.started.isoformat(timespec="seconds"),
            "input": None if self.input_path is None else str(self.input_path),
            "reading": self.reading,
            "operation": self.operation,
            "operations": [
                {
                    "action": op.action,
                    "tags": list(op.tags),
                    "remove_all": op.remove_all,
                    "rows": op.rows,
                }
                for op in self.operations
            ],
            "operation_count": self.operation_count,
            "target": self.target,
            "token_env": _variable(self.token_source),
            "credentials": {c.location_id: c.credential.label for c in self.credentials},
            "report": None if self.report_path is None else str(self.report_path),
            "resumed": self.resumed,
            "rows": sum(self.counts.values()),
            "counts": {status.value: self.counts[status] for status in statuses},
            "uncertain": self.uncertain,
            "uncertain_means": UNCERTAIN_MEANS,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "planned_requests": self.plan.requests,
            "rounds": self.rounds,
            "locations": self.locations,
            "reasons": [
                {"status": status.value, "message": message, "rows": rows}
                for status, message, rows in self.reasons
            ],
        }
        if self.undoes:
            facts["undoes"] = self.undoes
        if self.resolution is not None:
            found = self.resolution
            facts["lookup"] = {
                "searches": self.searches,
                "matched": sum(found.matched.values()),
                "not_found": sum(found.not_found.values()),
                "ambiguous": sum(found.ambiguous.values()),
                "unanswered": sum(found.unanswered.values()),
            }
        if final:
            facts["report_sha256"] = self.report_sha256
            facts["latest_complete_report"] = self.latest_complete_report
            facts["seconds"] = round(self.seconds, 3)
            facts["stages"] = {stage: round(sec, 3) for stage, sec in self.stages.items()}
            facts["stopped"] = None if self.stopped is None else str(self.stopped)
            facts["exit_code"] = self.exit_code
        return facts

    @property
    def settled(self) -> bool:
        """Nothing left to send: not stopped, no row failed or pending (the run is finished:
        the same command starts a new one)."""
        return self.stopped is None and not (
            self.counts[Status.FAILED] or self.counts[Status.PENDING]
        )

    @property
    def exit_code(self) -> int:
        """SPEC "Exit status": 3 stopped early, 1 some rows failed (or, in an undo, were left
        alone as uncertain), else 0. A plan's is 0 unless it stopped: its rows to send are
        `pending` because a plan sends nothing, not because anything went wrong."""
        if self.stopped is not None:
            return self.stopped.exit_code
        if self.planned_only:
            return 0
        if not self.settled or self.counts[Status.SKIPPED]:
            return 1
        return 0


Progress = Callable[[int, int], None]
"""Called with (requests settled, requests planned) as batches settle."""

Tick = Callable[[RunProgress], None]
"""Called with how far the run has got, as batches settle (rows, pace, retries, 429s)."""


def _variable(source: str) -> str | None:
    """The variable's name when one variable holds the token for every location."""
    name = source.removeprefix("$")
    return name if name != source and name.isidentifier() else None


def pending_message(stopped: BatcherError | None) -> str:
    """The message of the rows a run did not send: why it stopped, and what to do, said once
    (a stop that says what to do ends with its own advice, which includes running again)."""
    if stopped is None:
        return "not sent: the run ended early; run the same command again to send it"
    if stopped.advice:
        return f"not sent: {stopped}"
    return f"not sent: {stopped}; run the same command again to send it"
