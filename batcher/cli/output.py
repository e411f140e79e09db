"""What the commands print, as text: pure functions from results to lines (no I/O here).

The commands (`batcher.cli.commands`) print these lines through `batcher.cli.terminal`, which
spells out control characters; what goes to stderr as a log event (a warning, the last advice)
is built here too and emitted there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from batcher import RunInfo
from batcher.app.credentials import LocationCredential
from batcher.app.merging import MergeResult
from batcher.app.rendering import NOT_SENT
from batcher.app.result import UNCERTAIN_MEANS, Preview, RunProgress, RunResult, TagOperation
from batcher.app.resume import resume_command
from batcher.app.sharding import ShardLoad, dominant_location
from batcher.app.status import InputStatus, RunStatus
from batcher.app.undo import UndoInput
from batcher.domain.config import Settings
from batcher.domain.drip import LARGE_RUN, Schedule
from batcher.domain.errors import RESUME, BatcherError
from batcher.domain.models import RUN_STATUSES, UNDO_STATUSES, Status
from batcher.domain.planning import PlanStats

__all__ = [
    "PLAN_LOCATIONS",
    "STATUS_ORDER",
    "advice",
    "duration",
    "input_status_lines",
    "merge_lines",
    "other_runs",
    "pace",
    "plan_lines",
    "preview_lines",
    "run_lines",
    "schedule_lines",
    "shard_lines",
    "summary_lines",
    "undo_line",
    "undo_plan_lines",
    "with_advice",
]

# Locations `plan` lists one by one, busiest first.
PLAN_LOCATIONS = 10
STATUS_ORDER = RUN_STATUSES


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def pace(progress: RunProgress) -> str:
    """`1,234 rows/s, about 3 min left, 2 429s, 5 retries`: what a person watching wants."""
    eta = progress.eta_s
    left = "" if eta is None else f", about {duration(eta)} left"
    return (
        f"{progress.rows_per_s:,.0f} rows/s{left}, {progress.rate_limited:,} 429s, "
        f"{progress.retries:,} retries"
    )


def preview_lines(preview: Preview) -> Iterator[str]:
    """What a run is about to send, before it asks."""
    yield (
        f"batcher: about to {preview.operation}: {preview.rows:,} rows in "
        f"{preview.requests:,} requests over {preview.locations:,} "
        f"location{'s' if preview.locations != 1 else ''}, to {preview.target} "
        f"(at least {duration(preview.least_seconds)} at the rate limit)"
    )
    if preview.reading:
        yield f"  read as {preview.reading}"
    yield from _operation_lines(list(preview.operations), preview.operation_count)
    yield from credential_lines(preview.credentials)
    yield from schedule_lines(preview.schedule)


def credential_lines(credentials: Sequence[LocationCredential]) -> Iterator[str]:
    """Which credential each location sends with, and whether it is set: the first
    PLAN_LOCATIONS, then those not set among the rest."""
    if not credentials:
        return
    yield "  credentials:"
    shown = list(credentials[:PLAN_LOCATIONS])
    shown += [c for c in credentials[PLAN_LOCATIONS:] if not c.set]
    for credential in shown:
        yield f"    {credential.location_id}  {credential.text}"
    if len(credentials) > len(shown):
        yield f"    ... and {len(credentials) - len(shown):,} more locations, each set"


def schedule_lines(schedule: Schedule | None) -> Iterator[str]:
    """The drip and the window, when each location's last request is due, and the warning that
    a large run without a drip may set off the CRM's automations for every contact."""
    if schedule is None or not schedule.locations:
        return
    if schedule.paced:
        parts = []
        if schedule.drip is not None:
            parts.append(
                f"drip {schedule.drip.describe()} per location, in batches of at most "
                f"{schedule.batch_size:,}"
            )
        if schedule.window is not None:
            parts.append(f"window {schedule.window.text}")
        yield "  " + "; ".join(parts)
        shown = schedule.locations[:PLAN_LOCATIONS]
        for due in shown:
            last = "" if due.last is None else f": the last due {schedule.when(due.last)}"
            yield (
                f"  {due.location_id}  {due.contacts:>9,} contacts in {due.requests:,} "
                f"request{'s' if due.requests != 1 else ''}{last}"
            )
        if len(schedule.locations) > len(shown):
            yield f"  ... and {len(schedule.locations) - len(shown):,} more locations"
    if schedule.warn:
        yield (
            f"  warning: {schedule.contacts:,} contacts with no drip (over {LARGE_RUN:,}): each "
            'tag change may start the CRM\'s automations ("Tag Added" workflows, webhooks) for '
            "every contact, all at once; to spread them out use --drip N/PERIOD (e.g. --drip "
            "500/1h) or limits.contacts_per_hour"
        )


def _operation_lines(operations: list[TagOperation], count: int) -> Iterator[str]:
    """The distinct operations to send, most rows first: `    1,234 rows  add ["vip"]`."""
    if not operations:
        return
    yield f"  {count:,} distinct operation{'s' if count != 1 else ''}:"
    for operation in operations:
        yield f"    {operation.rows:>9,} rows  {operation}"
    if count > len(operations):
        yield f"    ... and {count - len(operations):,} more"


def with_advice(stopped: BatcherError) -> str:
    """A stop's reason, ending with what to do: its own advice, else how every stop resumes."""
    return str(stopped) if stopped.advice else f"{stopped}; {RESUME}"


def summary_lines(result: RunResult) -> Iterator[str]:
    """The summary on stdout: when, what, where, then rows by status and the top reasons."""
    total = sum(result.counts.values())
    verb = "stopped" if result.stopped is not None else "finished"
    yield (
        f"batcher: run {verb} in {result.seconds:.1f} s, started "
        f"{result.started:%Y-%m-%d %H:%M:%S} UTC"
        + (" (continued an unfinished run)" if result.resumed else "")
    )
    target = result.target + (f" (token from {result.token_source})" if result.token_source else "")
    for name, value in (
        ("input", f"{result.input_path} ({total:,} rows)"),
        *((("read as", result.reading),) if result.reading else ()),
        ("operation", result.operation),
        ("target", target),
        ("locations", f"{result.locations:,}"),
        ("report", str(result.report_path)),
        *((("summary", str(result.summary_path)),) if result.summary_path is not None else ()),
    ):
        yield f"  {name:<10} {value}"
    yield from lookup_lines(result, plan=False)
    yield from _counts_lines(result, total)
    yield from _time_and_reasons(result)


def lookup_lines(result: RunResult, *, plan: bool) -> Iterator[str]:
    """The rows given by email (Step 16): searches made (read-only), and per location how many
    rows matched one contact, none, several; a plan also shows the first matches, to check a
    few live before the run."""
    found = result.resolution
    if found is None:
        return
    searches = f"{result.searches:,} search{'es' if result.searches != 1 else ''}"
    yield (
        f"  by email   {found.rows:,} rows without a contact id, looked up by email: {searches} "
        "(POST /contacts/search, read-only: no tag is changed by it)"
    )
    locations = sorted(
        set(found.matched) | set(found.not_found) | set(found.ambiguous) | set(found.unanswered)
    )
    for location in locations:
        parts = [
            f"{found.matched.get(location, 0):,} matched",
            f"{found.not_found.get(location, 0):,} not found",
            f"{found.ambiguous.get(location, 0):,} ambiguous",
        ]
        if found.unanswered.get(location):
            parts.append(f"{found.unanswered[location]:,} not yet looked up")
        yield f"    location {location}: {', '.join(parts)}"
    if plan and found.first:
        yield "    first matches (check a few in HighLevel before the run):"
        for match in found.first:
            yield f"      {match.email} -> {match.contact_id} (location {match.location_id})"


# The statuses only rows given by email can have (Step 16).
_BY_EMAIL = (Status.NOT_FOUND, Status.AMBIGUOUS)


def _counts_lines(result: RunResult, total: int) -> Iterator[str]:
    statuses = STATUS_ORDER + (UNDO_STATUSES if result.undoes else ())
    width = max(len(status.value) for status in statuses)
    for status in statuses:
        if status in _BY_EMAIL and result.resolution is None and not result.counts[status]:
            continue  # a run without rows given by email: no line that can only say 0
        yield f"  {status.value:<{width}}  {result.counts[status]:>9,}"
    yield f"  {'uncertain':<{width}}  {result.uncertain:>9,}"
    if result.uncertain:
        yield f"  (uncertain: {UNCERTAIN_MEANS})"
    if not total:
        yield "  nothing to do: the input has no rows (--allow-empty)"


def _time_and_reasons(result: RunResult) -> Iterator[str]:
    yield (
        f"  requests {result.requests:,} (retries {result.retries:,}, 429s {result.rate_limited:,})"
    )
    if result.stages:
        yield "  time     " + ", ".join(
            f"{stage} {seconds:.1f} s" for stage, seconds in result.stages.items()
        )
    if result.reasons:
        yield "  top reasons:"
        for status, message, count in result.reasons:
            yield f"    {status.value:<7} {count:>9,}  {message}"


def other_runs(result: RunResult) -> Iterator[tuple[str, RunInfo]]:
    """A line for each of the first unfinished runs of other inputs, with the command that
    finishes it from its state (its input may be gone), and the run."""
    for other in result.others[:3]:
        failed = other.counts.get("failed", 0)
        pending = other.counts.get("pending", 0)
        yield (
            f"an unfinished run of another input is in the state directory: "
            f"{other.shown_input} ({other.operation}; {failed:,} failed, {pending:,} pending "
            f"rows when it stopped); `{resume_command(other)}` finishes it (the input file is "
            "not needed)",
            other,
        )


def advice(result: RunResult) -> str | None:
    """The summary's last word: what happened and what to do next (None: nothing to do)."""
    if result.stopped is not None:
        # Its input may be gone by the next run (a nightly export): name the run too.
        by_id = f" (or `batcher resume {result.run_id}`)" if result.run_id else ""
        return f"stopped: {with_advice(result.stopped)}{by_id}"
    if result.counts[Status.FAILED]:
        refused = not result.retryable_failed
        return "some rows failed; " + (
            "the API refused them: fix those rows in the input (see the report's message)"
            if refused
            else "run the same command again to retry them"
        )
    if result.counts[Status.PENDING]:
        return (
            "some rows are pending (they wait for an earlier row of the same contact); "
            "run the same command again to send them"
        )
    if result.counts[Status.SKIPPED]:
        return (
            f"{result.counts[Status.SKIPPED]:,} uncertain rows were left alone (their message "
            "says why): check those contacts, or undo the run again with --uncertain revert "
            "--again to revert them by the operation that was asked"
        )
    return None


def plan_lines(result: RunResult, settings: Settings, rejects_path: object | None) -> Iterator[str]:
    """`plan`'s report: rows by status with the first rows never sent, requests, rounds,
    operations, each location's share of the daily quota."""
    total = sum(result.counts.values())
    resumed = " (an unfinished run: rows already settled are not sent again)"
    yield (
        f"batcher: plan for {result.input_path}: {total:,} rows{resumed if result.resumed else ''}"
    )
    if result.reading:
        yield f"  read as {result.reading}"
    yield from lookup_lines(result, plan=True)
    yield from _plan_statuses(result, rejects_path)
    groups = result.plan.groups
    rounds = f" in {result.rounds} rounds" if result.rounds > 1 else ""
    yield (
        f"  {result.plan.requests:,} requests in {groups:,} group{'s' if groups != 1 else ''}"
        f"{rounds} over {result.locations:,} location{'s' if result.locations != 1 else ''}; "
        f"at least {duration(result.least_seconds)} at the rate limit"
    )
    if result.rounds > 1:
        yield (
            "  (rounds: some contacts have several rows; each contact's rows are applied in "
            "input order, a round at a time)"
        )
    yield from _operation_lines(result.operations, result.operation_count)
    yield from _quota_lines(result, settings)
    yield from credential_lines(result.credentials)
    yield from schedule_lines(result.schedule)
    if result.rejects_path is not None:
        rejected = sum(result.counts[status] for status in NOT_SENT)
        yield f"  rejects  {rejected:,} rows not to be sent written to {result.rejects_path}"
    if result.shard is not None:
        yield f"  (shard {result.shard}: only the rows of its locations)"


def _plan_statuses(result: RunResult, rejects_path: object | None) -> Iterator[str]:
    for status in STATUS_ORDER:
        if not result.counts[status]:
            continue
        name = "to send" if status is Status.PENDING else status.value
        yield f"  {name:<9}  {result.counts[status]:>9,}"
        examples = result.examples.get(status, [])
        for example in examples:
            yield (
                f"    row {example.row:,} (line {example.line:,}) "
                f"{json.dumps(example.contact_id, ensure_ascii=False)}: {example.message}"
            )
        if examples and result.counts[status] > len(examples):
            more = result.counts[status] - len(examples)
            where = "listed in " + str(rejects_path) if rejects_path else "--rejects FILE"
            yield f"    ... and {more:,} more ({where})"


def _quota_lines(result: RunResult, settings: Settings) -> Iterator[str]:
    limits = settings.limits
    budget = limits.daily_requests - limits.daily_reserve
    shown = result.per_location[:PLAN_LOCATIONS]
    for location, requests in shown:
        share = requests / budget
        warning = "  more than a day's quota: the run will stop and resume tomorrow" * (share > 1)
        yield f"  {location}  {requests:>9,} requests  {share:>7.2%} of the daily quota{warning}"
    if len(result.per_location) > len(shown):
        yield f"  ... and {len(result.per_location) - len(shown):,} more locations"


def shard_lines(
    result: RunResult, loads: Sequence[ShardLoad], count: int, settings: Settings
) -> tuple[list[str], str | None]:
    """`plan --shards N`: rows and requests per shard (stdout), and a warning for a location
    too big to split (stderr), if any."""
    rows_note = "" if result.rows_per_location else " (rows of an unfinished run not counted)"
    lines = [
        f"  over {count} shards (--shard K/{count}, K from 0 to {count - 1}){rows_note}:",
        f"    {'shard':>7}  {'rows':>9}  {'requests':>9}  {'locations':>9}  "
        f"{'busiest':>9}  least time",
    ]
    for load in loads:
        seconds = seconds_at_limit(load.busiest_requests, settings)
        lines.append(
            f"    {load.shard!s:>7}  {load.rows:>9,}  {load.requests:>9,}  {load.locations:>9,}  "
            f"{load.busiest_requests:>9,}  {duration(seconds)}"
        )
    per_location = dict(result.per_location)
    dominant = dominant_location(per_location, count)
    if dominant is None:
        return lines, None
    location, requests = dominant
    total = sum(per_location.values())
    limits = settings.limits
    warning = (
        f"batcher: warning: location {location} needs {requests:,} of the {total:,} "
        f"requests ({requests / total:.0%}): a location is never split, so {count} shards "
        f"finish no sooner than it alone (at least "
        f"{duration(seconds_at_limit(requests, settings))} at "
        f"{limits.requests_per_interval} requests per {limits.interval_ms / 1000:g} s)"
    )
    return lines, warning


def seconds_at_limit(requests: int, settings: Settings) -> float:
    limits = settings.limits
    return PlanStats(groups=1, requests=requests).seconds_at(
        limits.requests_per_interval, limits.interval_ms / 1000
    )


def merge_lines(result: MergeResult) -> tuple[list[str], str | None]:
    """`merge`'s report (stdout), and a line for rows failed or pending (stderr), if any."""
    lines = [
        f"batcher: merged {result.reports} report{'s' if result.reports != 1 else ''} into "
        f"{result.path}: {result.rows:,} rows"
    ]
    for status in STATUS_ORDER:
        if result.counts[status.value]:
            lines.append(f"  {status.value:<9}  {result.counts[status.value]:>9,}")
    unsettled = result.counts[Status.FAILED.value] + result.counts[Status.PENDING.value]
    if not unsettled:
        return lines, None
    return lines, (
        f"batcher: {unsettled:,} rows are failed or pending: run their shard's command "
        "again, then merge again"
    )


def undo_line(source: UndoInput) -> str:
    """What an undo takes back of its run."""
    return (
        f"  undo       {source.undone:,} of the run's {source.rows:,} rows "
        f"({source.operations:,} operations); {source.nothing:,} with nothing to undo, "
        f"{source.skipped:,} uncertain left alone (skipped)"
    )


def undo_plan_lines(report: object, run: RunResult, source: UndoInput) -> Iterator[str]:
    """`undo --plan`: what the undo would send."""
    resumed = " (an unfinished undo: operations already settled are not sent again)"
    yield f"batcher: undo plan for {report}{resumed if run.resumed else ''}"
    yield undo_line(source)
    yield f"  to send    {run.counts[Status.PENDING]:>9,} operations"
    yield (
        f"  {run.plan.requests:,} requests over {run.locations:,} "
        f"location{'s' if run.locations != 1 else ''}; at least "
        f"{duration(run.least_seconds)} at the rate limit"
    )


def input_status_lines(found: InputStatus) -> Iterator[str]:
    """`status INPUT`: the run that the same `run` command would continue, or why none."""
    yield f"batcher: status of {found.input_path}"
    yield f"  operation  {found.operation}"
    yield f"  target     {found.target}"
    if found.run is not None:
        run = found.run
        yield (
            f"  an unfinished run, started {_started(run)}: `batcher run` with the same options "
            "continues it (--fresh starts a new one)"
        )
        yield f"  rows       {_counts(run)}"
        yield f"  to send    {run.to_send:,} rows (pending and failed)"
        if run.window:
            yield f"  window     {run.window}"
        yield from _reports(run.info)
    elif found.last is not None:
        yield (
            f"  its last run finished (started {_started(found.last)}): `batcher run` would "
            "start a new one"
        )
        yield f"  rows       {_counts(found.last)}"
        yield from _reports(found.last.info)
    else:
        yield "  no run of this input with this operation and target: `batcher run` starts one"
    for other in found.others:
        yield (
            f"  note: an unfinished run of this file with another content, operation or target "
            f"(started {_started(other)}: {other.info.operation}, to {other.info.target}); "
            f"it is not the one this command would continue: `{resume_command(other.info)}` "
            "finishes it"
        )


def run_lines(run: RunStatus, config_file: Path | None = None) -> Iterator[str]:
    """One run of `status`'s list; an unfinished one names the command that finishes it from
    its state (with `config_file`, the --config that status was given)."""
    if run.finished:
        state = "finished"
    elif run.state == "loading":
        state = "stopped while loading: nothing was sent; its command starts it again"
    else:
        state = (
            f"unfinished: {run.to_send:,} rows still to send; "
            f"`{resume_command(run.info, config_file)}`"
            " finishes it (its input file is not needed), as does its own command"
        )
    info = run.info
    undone = run.undo_of
    yield f"- started {_started(run)}, {state}"
    if info.run_id:
        yield f"  run id     {info.run_id}"
    undoes = f" (run {info.undoes})" if info.undoes else ""
    yield f"  input      {f'undo of {undone}{undoes}' if undone else info.shown_input}"
    operation = "undo: remove what the run added, add back what it removed"
    yield f"  operation  {operation if undone else info.operation}"
    yield f"  target     {info.target}"
    if run.window:
        yield f"  window     {run.window}"
    yield from _reports(info)
    yield f"  rows       {_counts(run)}{'' if run.finished or run.live else ' (when it stopped)'}"


def _started(run: RunStatus) -> str:
    return _stamp(run.info.created)


def _stamp(stamp: str) -> str:
    return stamp.replace("T", " ").replace("Z", " UTC") if stamp else "at an unknown time"


def _counts(run: RunStatus) -> str:
    if not run.counts:
        return "none counted yet"
    order = [status.value for status in STATUS_ORDER]
    shown = sorted(
        run.counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99
    )
    return ", ".join(f"{n:,} {name}" for name, n in shown)


def _reports(info: RunInfo) -> Iterator[str]:
    """The run's report (its latest complete one), every command's report when there were
    several, and whether the run was undone."""
    if info.report:
        complete = any(r.complete for r in info.reports) or not info.keeps_reports
        yield f"  report     {info.report}{'' if complete else ' (partial: rows pending)'}"
    if len(info.reports) > 1:
        for record in info.reports:
            kind = "complete" if record.complete else "partial"
            yield (
                f"    command {record.invocation}: {record.path} ({record.rows:,} rows, {kind}, "
                f"written {_stamp(record.written)})"
            )
    if info.undone is not None:
        yield f"  undone     {_stamp(info.undone.finished)}, by {info.undone.by}"
