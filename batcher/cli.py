"""The command line: parse options, call the library, print one line per problem (SPEC "Commands").

Thin on purpose (DESIGN.md): what a command does is in the library (`batcher.jobs` builds the
Job with the defaults every face shares, `batcher.runner.execute` runs it); this module turns
options into calls, asks for confirmation on a terminal, draws progress on stderr when it is a
terminal, prints the summary, and maps every error to one line and SPEC's exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from batcher import __version__, logs
from batcher.config import Settings, load_settings
from batcher.crash import write_crash_file
from batcher.errors import RESUME, BatcherError, UsageError
from batcher.events import Event
from batcher.jobs import build_job
from batcher.ledger import RunInfo
from batcher.merging import merge_reports
from batcher.models import RUN_STATUSES, UNDO_STATUSES, Status
from batcher.planning import PlanStats
from batcher.printable import escaped
from batcher.runner import (
    UNCERTAIN_MEANS,
    Preview,
    RunProgress,
    RunResult,
    TagOperation,
    Tick,
    execute,
)
from batcher.sandbox import config_from_options, serve
from batcher.secrets import Scrubber
from batcher.sending import is_permanent
from batcher.sharding import dominant_location, resolve_shard, spread
from batcher.status import RunStatus, input_status, list_runs
from batcher.stopping import Stop, signals_stop
from batcher.undo import UndoResult
from batcher.undo import undo as run_undo

# Locations `plan` lists one by one, busiest first.
PLAN_LOCATIONS = 10
# The log format of this process's lines on stderr (`--log-format`; set by `_logging`).
_log_format = "text"

STATUS_ORDER = RUN_STATUSES


def _echo(text: str, *, err: bool = False) -> None:
    """Print one line, controls spelled out (`batcher.printable`: a cell or a file name with an
    escape sequence must not drive the terminal); a closed pipe (`| head -1`) is not an error of
    ours."""
    try:
        click.echo(escaped(text), err=err)
    except BrokenPipeError:
        # Point the stream at /dev/null so that the interpreter's final flush is quiet too.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), (sys.stderr if err else sys.stdout).fileno())


def _fail(message: str, code: int) -> NoReturn:
    logs.emit(Event("error", message, {"exit_code": code}, level="error"))
    sys.exit(code)


def _notify(message: str) -> None:
    logs.emit(Event("notice", message))


def _warn(message: str, **fields: object) -> None:
    logs.emit(Event("warning", message, fields, level="warning"))


def _err_line(line: str) -> None:
    _echo(line, err=True)


def _logging(log_format: str, settings: Settings | None = None) -> None:
    """Lines on stderr as `log_format` says (text: `batcher: ...`; json: one object per event),
    the token of `settings` (else $BATCHER_TOKEN) scrubbed from every one."""
    global _log_format
    _log_format = log_format
    logs.setup(log_format, _err_line, _scrubber(settings))


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _run_identity(*, input_required: bool = True) -> list[Decorator]:
    """The options that say which run a command means (SPEC "Runs and resuming": the input, the
    operation asked, its target, the shard): `run`, `plan` and `status` take these, from this one
    list, so that `status INPUT` with `run`'s options finds the run that `run` continues."""
    return [
        click.argument(
            "input_path",
            metavar="INPUT" if input_required else "[INPUT]",
            required=input_required,
            type=click.Path(path_type=Path),
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="TOML settings (default: ./batcher.toml if present).",
        ),
        click.option(
            "--action",
            type=click.Choice(["add", "remove"], case_sensitive=False),
            help="The operation for every row (else the file's action column).",
        ),
        click.option(
            "--tags",
            help='The tags for every row, e.g. "vip,newsletter" or a JSON list \'["a,b","c"]\'.',
        ),
        click.option(
            "--remove-all-tags",
            is_flag=True,
            help="Remove every tag from the contacts (implies --action remove).",
        ),
        click.option("--location-id", help="The location for every row (else column, config)."),
        click.option("--id-column", help="The column holding the contact id (else detected)."),
        click.option(
            "--sheet",
            help="Excel sheet to read: a name, or a position among the visible sheets "
            "(default: the first visible sheet).",
        ),
        click.option("--base-url", help="API base URL (default: api.base_url)."),
        click.option(
            "--sandbox",
            is_flag=True,
            help="Run against the embedded emulator on loopback (no token needed).",
        ),
        click.option(
            "--delimiter",
            help="CSV delimiter: one character, or tab, comma, semicolon, pipe (else sniffed; "
            ".tsv is tab).",
        ),
        click.option(
            "--encoding",
            help="The CSV file's encoding, e.g. cp1251 (else UTF-8 or UTF-16 by BOM, or a code "
            "page only when the cells sent read the same in every likely one; input.encoding).",
        ),
        click.option(
            "--shard",
            metavar="K/N",
            help="Take only the rows whose location is in shard K of N (K from 0 to N-1); "
            "else $BATCHER_SHARD.",
        ),
        click.option(
            "--shards",
            metavar="N",
            help="The number of shards: the index K comes from $JOB_COMPLETION_INDEX (or "
            "$AWS_BATCH_JOB_ARRAY_INDEX, $CLOUD_RUN_TASK_INDEX); `plan --shards N` without an "
            "index shows how the rows spread over N shards.",
        ),
    ]


def _with_options(options: list[Decorator]) -> Decorator:
    """One decorator applying `options` in the order listed (as if stacked in that order)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _job_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by `run` and `plan` (SPEC "Commands"): which run, then how it goes."""
    options = [
        *_run_identity(),
        click.option(
            "--report",
            "report_path",
            type=click.Path(path_type=Path),
            help="Report file: .csv, .xlsx or .jsonl (default: INPUT-report.csv here).",
        ),
        click.option(
            "--fresh",
            is_flag=True,
            help="Start a new run even if an unfinished run of this input exists.",
        ),
        click.option(
            "--allow-empty",
            is_flag=True,
            help="A file with a header and no rows is 'nothing to do' (exit 0), not an error.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
        click.option(
            "--log-format",
            type=click.Choice(logs.FORMATS, case_sensitive=False),
            default="text",
            show_default=True,
            help="Lines on stderr: text for people, json for one JSON object per event (cron, "
            "log collectors).",
        ),
    ]
    return _with_options(options)(command)


@contextmanager
def _progress(quiet: bool) -> Iterator[Tick | None]:
    """Progress on stderr when it is a terminal: rows done of total, rows/s, the time left at
    the pace so far, 429s and retries. Nothing for cron, pipes, --quiet or JSON logs."""
    console = Console(stderr=True)
    if quiet or _log_format != "text" or not console.is_terminal:
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pace]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("rows", total=None, pace="")

        def update(progress: RunProgress) -> None:
            bar.update(
                task,
                completed=progress.rows_done,
                total=progress.rows_total,
                pace=_pace(progress),
            )

        yield update


def _pace(progress: RunProgress) -> str:
    """`1,234 rows/s, about 3 min left, 2 429s, 5 retries`: what a person watching wants."""
    eta = progress.eta_s
    left = "" if eta is None else f", about {_duration(eta)} left"
    return (
        f"{progress.rows_per_s:,.0f} rows/s{left}, {progress.rate_limited:,} 429s, "
        f"{progress.retries:,} retries"
    )


def _interactive() -> bool:
    """Whether someone at a terminal can answer a question (never for cron or a pipe)."""
    return sys.stdin.isatty()


def _confirm(yes: bool) -> Callable[[Preview], bool] | None:
    """Ask before sending, on a terminal only; `--yes`, cron and pipes are never asked."""
    if yes or not _interactive():
        return None

    def ask(preview: Preview) -> bool:
        _echo(
            f"batcher: about to {preview.operation}: {preview.rows:,} rows in "
            f"{preview.requests:,} requests over {preview.locations:,} "
            f"location{'s' if preview.locations != 1 else ''}, to {preview.target} "
            f"(at least {_duration(preview.least_seconds)} at the rate limit)",
            err=True,
        )
        if preview.reading:
            _echo(f"  read as {preview.reading}", err=True)
        for line in _operation_lines(list(preview.operations), preview.operation_count):
            _echo(line, err=True)
        return click.confirm("Send?", default=False, err=True)

    return ask


def _operation_lines(operations: list[TagOperation], count: int) -> Iterator[str]:
    """The distinct operations to send, most rows first: `    1,234 rows  add ["vip"]`."""
    if not operations:
        return
    yield f"  {count:,} distinct operation{'s' if count != 1 else ''}:"
    for operation in operations:
        yield f"    {operation.rows:>9,} rows  {operation}"
    if count > len(operations):
        yield f"    ... and {count - len(operations):,} more"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _scrubber(settings: Settings | None) -> Scrubber:
    name = settings.api.token_env if settings is not None else "BATCHER_TOKEN"
    return Scrubber.for_environment(os.environ.get(name))


@contextmanager
def _one_line_errors(settings: Callable[[], Settings | None]) -> Iterator[None]:
    """Every way a command can fail ends in one line and SPEC's exit code, never a traceback.

    An unexpected error also leaves its traceback (token scrubbed) in a crash file under the
    state directory, named in the line.
    """
    try:
        yield
    except BatcherError as exc:
        _fail(_scrubber(settings()).scrub(str(exc)), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; what was saved is kept: run the same command again to resume", 3)
    except Exception as exc:
        current = settings()
        scrubber = _scrubber(current)
        state_dir = Path(current.state.dir if current is not None else ".batcher")
        crash = write_crash_file(state_dir, exc, scrubber)
        where = f"details in {crash}" if crash is not None else "no crash file could be written"
        _fail(
            scrubber.scrub(
                f"internal error ({type(exc).__name__}: {exc}); {where}; what was saved is "
                "kept: run the same command again to resume, and please report this"
            ),
            3,
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batcher")
def main() -> None:
    """Apply tag changes to large contact lists through the bulk contact-tags API."""
    _logging("text")  # commands with --log-format choose again


def _run_job(
    options: dict[str, Any],
    *,
    dry_run: bool,
    quiet: bool,
    yes: bool,
    rejects: Path | None = None,
) -> tuple[Settings, RunResult]:
    holder: list[Settings] = []
    log_format = options.pop("log_format", None) or "text"
    _logging(log_format.lower())
    with _one_line_errors(lambda: holder[0] if holder else None):
        config_file = options.pop("config_file")
        base_url = options.pop("base_url")
        settings = load_settings(config_file, overrides={"api.base_url": base_url}, warn=_notify)
        holder.append(settings)
        logs.set_scrubber(_scrubber(settings))
        job = build_job(settings, config_file=config_file, **options)
        stop = Stop()
        with signals_stop(stop), _progress(quiet or dry_run) as progress:
            return settings, asyncio.run(
                execute(
                    settings,
                    job,
                    dry_run=dry_run,
                    on_tick=progress,
                    events=logs.emit,
                    # The sandbox changes no real contact: nothing to confirm.
                    confirm=None if dry_run or job.sandbox is not None else _confirm(yes),
                    stop=stop,
                    rejects=rejects,
                )
            )
    raise AssertionError("unreachable: _one_line_errors exits")  # pragma: no cover


@main.command()
@_job_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before sending.")
def run(quiet: bool, yes: bool, **options: Any) -> None:
    """Send the tag operations in INPUT and write the report.

    Exit status: 0 all rows settled, 1 some rows failed (run again to retry them),
    2 usage/config/input error (nothing sent), 3 stopped early (run again to resume).
    """
    _, result = _run_job(options, dry_run=False, quiet=quiet, yes=yes)
    _summary(result)
    sys.exit(result.exit_code)


def _with_advice(stopped: BatcherError) -> str:
    """A stop's reason, ending with what to do: its own advice, else how every stop resumes."""
    return str(stopped) if stopped.advice else f"{stopped}; {RESUME}"


def _summary(result: RunResult) -> None:
    """The summary on stdout: when, what, where, then rows by status and the top reasons."""
    total = sum(result.counts.values())
    verb = "stopped" if result.stopped is not None else "finished"
    _echo(
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
        _echo(f"  {name:<10} {value}")
    statuses = STATUS_ORDER + (UNDO_STATUSES if result.undoes else ())
    width = max(len(status.value) for status in statuses)
    for status in statuses:
        _echo(f"  {status.value:<{width}}  {result.counts[status]:>9,}")
    _echo(f"  {'uncertain':<{width}}  {result.uncertain:>9,}")
    if result.uncertain:
        _echo(f"  (uncertain: {UNCERTAIN_MEANS})")
    if not total:
        _echo("  nothing to do: the input has no rows (--allow-empty)")
    _echo(
        f"  requests {result.requests:,} (retries {result.retries:,}, 429s {result.rate_limited:,})"
    )
    if result.stages:
        _echo(
            "  time     "
            + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.stages.items())
        )
    if result.reasons:
        _echo("  top reasons:")
        for status, message, count in result.reasons:
            _echo(f"    {status.value:<7} {count:>9,}  {message}")
    for other in result.others[:3]:
        failed = other.counts.get("failed", 0)
        pending = other.counts.get("pending", 0)
        _warn(
            f"an unfinished run of another input is in the state directory: "
            f"{other.input} ({other.operation}; {failed:,} failed, {pending:,} pending rows "
            f"when it stopped); run its command again to finish it",
            input=str(other.input),
        )
    if result.stopped is not None:
        _advise(f"stopped: {_with_advice(result.stopped)}")
    elif result.counts[Status.FAILED]:
        permanent = all(is_permanent(message) for _, message, _ in result.reasons)
        _advise(
            "some rows failed; "
            + (
                "the API refused them: fix those rows in the input (see the report's message)"
                if permanent
                else "run the same command again to retry them"
            )
        )
    elif result.counts[Status.PENDING]:
        _advise(
            "some rows are pending (they wait for an earlier row of the same contact); "
            "run the same command again to send them"
        )
    elif result.counts[Status.SKIPPED]:
        _advise(
            f"{result.counts[Status.SKIPPED]:,} uncertain rows were left alone (their message "
            "says why): check those contacts, or undo the run again with --uncertain revert "
            "--again to revert them by the operation that was asked"
        )


def _advise(message: str) -> None:
    """The summary's last word on stderr: what happened and what to do next."""
    logs.emit(Event("advice", message, level="warning"))


@main.command()
@_job_options
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(path_type=Path),
    help="Write the rows that would not be sent (invalid, duplicate) to this file: .csv, .xlsx "
    "or .jsonl, with the report's columns.",
)
def plan(quiet: bool, rejects_path: Path | None, **options: Any) -> None:
    """Read and check INPUT and show what `run` would send; send nothing.

    A preflight: rows by status with the first invalid and duplicate rows and why, requests
    per location, rounds, the least time at the rate limit and the share of the daily quota.
    """
    options.pop("report_path")
    shards = options.get("shards")
    settings, result = _run_job(
        {**options, "report_path": None},
        dry_run=True,
        quiet=True,
        yes=True,
        rejects=rejects_path,
    )
    if result.stopped is not None:
        _fail(f"{result.stopped}; nothing was sent (plan sends nothing)", 3)
    limits = settings.limits
    total = sum(result.counts.values())
    resumed = " (an unfinished run: rows already settled are not sent again)"
    _echo(
        f"batcher: plan for {result.input_path}: {total:,} rows{resumed if result.resumed else ''}"
    )
    if result.reading:
        _echo(f"  read as {result.reading}")
    for status in STATUS_ORDER:
        if result.counts[status]:
            name = "to send" if status is Status.PENDING else status.value
            _echo(f"  {name:<9}  {result.counts[status]:>9,}")
            examples = result.examples.get(status, [])
            for example in examples:
                _echo(
                    f"    row {example.row:,} (line {example.line:,}) "
                    f"{json.dumps(example.contact_id, ensure_ascii=False)}: {example.message}"
                )
            if examples and result.counts[status] > len(examples):
                more = result.counts[status] - len(examples)
                where = "listed in " + str(rejects_path) if rejects_path else "--rejects FILE"
                _echo(f"    ... and {more:,} more ({where})")
    groups = result.plan.groups
    rounds = f" in {result.rounds} rounds" if result.rounds > 1 else ""
    _echo(
        f"  {result.plan.requests:,} requests in {groups:,} group{'s' if groups != 1 else ''}"
        f"{rounds} over {result.locations:,} location{'s' if result.locations != 1 else ''}; "
        f"at least {_duration(result.least_seconds)} at the rate limit"
    )
    if result.rounds > 1:
        _echo(
            "  (rounds: some contacts have several rows; each contact's rows are applied in "
            "input order, a round at a time)"
        )
    for line in _operation_lines(result.operations, result.operation_count):
        _echo(line)
    budget = limits.daily_requests - limits.daily_reserve
    shown = result.per_location[:PLAN_LOCATIONS]
    for location, requests in shown:
        share = requests / budget
        warning = "  more than a day's quota: the run will stop and resume tomorrow" * (share > 1)
        _echo(f"  {location}  {requests:>9,} requests  {share:>7.2%} of the daily quota{warning}")
    if len(result.per_location) > len(shown):
        _echo(f"  ... and {len(result.per_location) - len(shown):,} more locations")
    if result.rejects_path is not None:
        rejected = sum(result.counts[status] for status in (Status.INVALID, Status.DUPLICATE))
        _echo(f"  rejects  {rejected:,} rows not to be sent written to {result.rejects_path}")
    if result.shard is not None:
        _echo(f"  (shard {result.shard}: only the rows of its locations)")
    if result.shard is None and shards is not None:
        _plan_shards(result, int(shards), settings)


def _plan_shards(result: RunResult, count: int, settings: Settings) -> None:
    """`plan --shards N`: rows and requests per shard, and a location too big to split."""
    limits = settings.limits
    per_location = dict(result.per_location)
    loads = spread(result.rows_per_location, per_location, count)
    rows_note = "" if result.rows_per_location else " (rows of an unfinished run not counted)"
    _echo(f"  over {count} shards (--shard K/{count}, K from 0 to {count - 1}){rows_note}:")
    _echo(
        f"    {'shard':>7}  {'rows':>9}  {'requests':>9}  {'locations':>9}  "
        f"{'busiest':>9}  least time"
    )
    for load in loads:
        seconds = _seconds_at_limit(load.busiest_requests, settings)
        _echo(
            f"    {load.shard!s:>7}  {load.rows:>9,}  {load.requests:>9,}  {load.locations:>9,}  "
            f"{load.busiest_requests:>9,}  {_duration(seconds)}"
        )
    dominant = dominant_location(per_location, count)
    if dominant is not None:
        location, requests = dominant
        total = sum(per_location.values())
        _echo(
            f"batcher: warning: location {location} needs {requests:,} of the {total:,} "
            f"requests ({requests / total:.0%}): a location is never split, so {count} shards "
            f"finish no sooner than it alone (at least "
            f"{_duration(_seconds_at_limit(requests, settings))} at "
            f"{limits.requests_per_interval} requests per {limits.interval_ms / 1000:g} s)",
            err=True,
        )


def _seconds_at_limit(requests: int, settings: Settings) -> float:
    limits = settings.limits
    return PlanStats(groups=1, requests=requests).seconds_at(
        limits.requests_per_interval, limits.interval_ms / 1000
    )


@main.command()
@click.argument("reports", metavar="REPORT...", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--report",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="The merged report: .csv, .xlsx or .jsonl picks the format.",
)
@click.option(
    "--shards",
    metavar="N",
    help="Also check that there is one report for each of N shards (rows after the last "
    "reported row can only be found missing this way).",
)
def merge(reports: tuple[Path, ...], out: Path, shards: str | None) -> None:
    """Merge the shards' reports into one report in input order, every row once.

    Exit status: 0 written, 1 some rows are in no report (a shard has not run yet; nothing
    written), 2 the reports do not belong together or cannot be read (nothing written).
    """
    with _one_line_errors(lambda: None):
        count = None if shards is None else _shard_count(shards)
        result = merge_reports(list(reports), out, shards=count)
        _echo(
            f"batcher: merged {result.reports} report{'s' if result.reports != 1 else ''} into "
            f"{result.path}: {result.rows:,} rows"
        )
        for status in STATUS_ORDER:
            if result.counts[status.value]:
                _echo(f"  {status.value:<9}  {result.counts[status.value]:>9,}")
        unsettled = result.counts[Status.FAILED.value] + result.counts[Status.PENDING.value]
        if unsettled:
            _echo(
                f"batcher: {unsettled:,} rows are failed or pending: run their shard's command "
                "again, then merge again",
                err=True,
            )


def _shard_count(text: str) -> int:
    _, count = resolve_shard(None, text, environ={})
    assert count is not None
    return count


@main.command()
@click.option("--port", type=int, help="Port on 127.0.0.1 (default: any free port).")
@click.option("--token", help='The bearer token it accepts (default "sandbox-token").')
@click.option(
    "--rate",
    help='Rate limit: "100/10000", "100/10000,daily=200000,window=fixed" or "off".',
)
@click.option(
    "--faults",
    help='Faults: e.g. "error_rate=0.1,fail_first=3,drop_after=0.05,latency_ms=5-50,seed=7".',
)
@click.option("--fixture", type=click.Path(path_type=Path), help="JSON contact universe to load.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML file with a [sandbox] table.",
)
@click.option(
    "--public",
    is_flag=True,
    default=None,
    help="Allow a [sandbox] host that is not loopback (other machines can reach it).",
)
def sandbox(
    port: int | None,
    token: str | None,
    rate: str | None,
    faults: str | None,
    fixture: Path | None,
    config_file: Path | None,
    public: bool | None,
) -> None:
    """Serve the local emulator of the bulk contact-tags API until interrupted."""
    try:
        config = config_from_options(
            config_file=config_file,
            port=port,
            token=token,
            rate=rate,
            faults=faults,
            fixture=fixture,
            public=public,
        )
    except ValueError as exc:
        _fail(str(exc), 2)

    def announce(url: str) -> None:
        _echo(f"batcher sandbox listening on {url} (Ctrl-C to stop)", err=True)
        _echo(url)

    # Ctrl-C is how the sandbox is stopped: a plain KeyboardInterrupt, caught right here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        asyncio.run(serve(config, announce, warn=_notify))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        _fail(f"cannot listen on {where} ({exc.strerror}); choose another --port", 2)


@main.command()
@click.argument("report", metavar="REPORT", type=click.Path(path_type=Path))
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML settings (default: ./batcher.toml if present).",
)
@click.option("--base-url", help="API base URL (default: api.base_url): where the run went.")
@click.option(
    "--sandbox",
    is_flag=True,
    help="Undo against the embedded emulator on loopback (no token needed).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="The undo's own report: .csv, .xlsx or .jsonl (default: REPORT-undo.csv here).",
)
@click.option(
    "--plan", "dry_run", is_flag=True, help="Show what the undo would send; send nothing."
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start a new undo even if an unfinished undo of this report exists.",
)
@click.option(
    "--uncertain",
    type=click.Choice(["leave", "revert"], case_sensitive=False),
    default="leave",
    show_default=True,
    help="Rows marked uncertain (an answer was lost): leave them alone (skipped, exit 1), or "
    "revert them by the operation that was asked (remove the tags asked to add, add back the "
    "tags asked to remove).",
)
@click.option("--again", is_flag=True, help="Undo a run that was undone already.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before sending.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def undo(
    report: Path,
    config_file: Path | None,
    base_url: str | None,
    sandbox: bool,
    report_path: Path | None,
    dry_run: bool,
    fresh: bool,
    uncertain: str,
    again: bool,
    yes: bool,
    quiet: bool,
) -> None:
    """Take back the run that wrote REPORT: remove the tags it added, add back the tags it
    removed.

    REPORT identifies the run (its exact bytes, among the runs in the state directory); what
    is undone comes from the run's own records: the API's answers, not changes made by others
    since. Rows marked uncertain are left alone unless --uncertain revert. Batched, paced and
    resumable like a run: running the same command again continues an unfinished undo. Exit
    status as for `run`; 1 also when uncertain rows were left alone.
    """
    holder: list[Settings] = []
    result: UndoResult | None = None
    with _one_line_errors(lambda: holder[0] if holder else None):
        settings = load_settings(config_file, overrides={"api.base_url": base_url}, warn=_notify)
        holder.append(settings)
        stop = Stop()
        with signals_stop(stop), _progress(quiet or dry_run) as progress:
            result = asyncio.run(
                run_undo(
                    settings,
                    report,
                    report_path=report_path,
                    sandbox=sandbox,
                    config_file=config_file,
                    fresh=fresh,
                    dry_run=dry_run,
                    uncertain=uncertain.lower(),
                    again=again,
                    on_tick=progress,
                    notify=_notify,
                    confirm=None if dry_run or sandbox else _confirm(yes),
                    stop=stop,
                )
            )
    assert result is not None  # _one_line_errors exits otherwise
    source = result.source
    line = (
        f"  undo       {source.undone:,} of the run's {source.rows:,} rows "
        f"({source.operations:,} operations); {source.nothing:,} with nothing to undo, "
        f"{source.skipped:,} uncertain left alone (skipped)"
    )
    if dry_run:
        run = result.run
        if run.stopped is not None:
            _fail(f"{run.stopped}; nothing was sent (--plan sends nothing)", 3)
        resumed = " (an unfinished undo: operations already settled are not sent again)"
        _echo(f"batcher: undo plan for {report}{resumed if run.resumed else ''}")
        _echo(line)
        _echo(f"  to send    {run.counts[Status.PENDING]:>9,} operations")
        _echo(
            f"  {run.plan.requests:,} requests over {run.locations:,} "
            f"location{'s' if run.locations != 1 else ''}; at least "
            f"{_duration(run.least_seconds)} at the rate limit"
        )
        return
    _summary(result.run)
    _echo(line)
    sys.exit(result.exit_code)


@main.command()
@_with_options(_run_identity(input_required=False))
def status(input_path: Path | None, config_file: Path | None, **options: Any) -> None:
    """The runs in the state directory and how far each got; with INPUT (and the options given
    to `run` that say which run: the operation, target and shard), the run that the same `run`
    command would continue. Changes nothing; works while a run is going."""
    holder: list[Settings] = []
    with _one_line_errors(lambda: holder[0] if holder else None):
        base_url = options.pop("base_url")
        settings = load_settings(config_file, overrides={"api.base_url": base_url}, warn=_notify)
        holder.append(settings)
        state_dir = Path(settings.state.dir)
        if input_path is None:
            given = [name for name, value in options.items() if value not in (None, False)]
            if given:
                raise UsageError(
                    f"--{given[0].replace('_', '-')} goes with INPUT: give the input file too"
                )
            runs = list_runs(state_dir)
            if not runs:
                _echo(f"batcher: no runs in {state_dir}")
                return
            _echo(f"batcher: {len(runs):,} run{'s' if len(runs) != 1 else ''} in {state_dir}")
            for run in runs:
                _show_run(run)
            return
        job = build_job(settings, input_path, config_file=config_file, **options)
        found = input_status(settings, job)
    _echo(f"batcher: status of {found.input_path}")
    _echo(f"  operation  {found.operation}")
    _echo(f"  target     {found.target}")
    if found.run is not None:
        run = found.run
        _echo(
            f"  an unfinished run, started {_started(run)}: `batcher run` with the same options "
            "continues it (--fresh starts a new one)"
        )
        _echo(f"  rows       {_counts(run)}")
        _echo(f"  to send    {run.to_send:,} rows (pending and failed)")
        _show_reports(run.info)
    elif found.last is not None:
        _echo(
            f"  its last run finished (started {_started(found.last)}): `batcher run` would "
            "start a new one"
        )
        _echo(f"  rows       {_counts(found.last)}")
        _show_reports(found.last.info)
    else:
        _echo("  no run of this input with this operation and target: `batcher run` starts one")
    for other in found.others:
        _echo(
            f"  note: an unfinished run of this file with another content, operation or target "
            f"(started {_started(other)}: {other.info.operation}, to {other.info.target}); "
            "it is not the one this command would continue"
        )


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


def _show_run(run: RunStatus) -> None:
    if run.finished:
        state = "finished"
    elif run.state == "loading":
        state = "stopped while loading: nothing was sent; its command starts it again"
    else:
        state = f"unfinished: {run.to_send:,} rows still to send; run its command again to continue"
    info = run.info
    undone = run.undo_of
    _echo(f"- started {_started(run)}, {state}")
    if info.run_id:
        _echo(f"  run id     {info.run_id}")
    undoes = f" (run {info.undoes})" if info.undoes else ""
    _echo(f"  input      {f'undo of {undone}{undoes}' if undone else info.input}")
    operation = "undo: remove what the run added, add back what it removed"
    _echo(f"  operation  {operation if undone else info.operation}")
    _echo(f"  target     {info.target}")
    _show_reports(info)
    _echo(f"  rows       {_counts(run)}{'' if run.finished or run.live else ' (when it stopped)'}")


def _show_reports(info: RunInfo) -> None:
    """The run's report (its latest complete one), every command's report when there were
    several, and whether the run was undone."""
    if info.report:
        complete = any(r.complete for r in info.reports) or not info.keeps_reports
        _echo(f"  report     {info.report}{'' if complete else ' (partial: rows pending)'}")
    if len(info.reports) > 1:
        for record in info.reports:
            kind = "complete" if record.complete else "partial"
            _echo(
                f"    command {record.invocation}: {record.path} ({record.rows:,} rows, {kind}, "
                f"written {_stamp(record.written)})"
            )
    if info.undone is not None:
        _echo(
            f"  undone     {_stamp(info.undone.finished)}, by the undo whose report is "
            f"{info.undone.report}"
        )


@main.command("serve")
@click.option("--port", type=int, default=8765, show_default=True, help="Port to listen on.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; beyond loopback the page also needs a password (serve.password_env; "
    "with none named, one is made and printed).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Runs go to the embedded emulator on loopback (no token needed): a demo, or a rehearsal.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML settings (default: ./batcher.toml if present).",
)
def serve_command(port: int, host: str, sandbox: bool, config_file: Path | None) -> None:
    """Serve the web page for uploads: plan, run, watch, stop, download the report.

    Prints the page's address once, with a secret made at this start: only that address (or,
    beyond loopback, the password) opens the page.
    """
    from batcher.web import WebOptions, check_bind, serve_page  # aiohttp.web: only when serving

    holder: list[Settings] = []
    with _one_line_errors(lambda: holder[0] if holder else None):
        settings = load_settings(config_file, warn=_notify)
        holder.append(settings)
        password = check_bind(settings, host)
        options = WebOptions(
            config_file=config_file,
            sandbox=sandbox,
            host=host,
            password=password.text if password is not None else "",
            warn=_warn,
        )

        def announce(url: str) -> None:
            # The only lines that hold the secret (and a password made here): never logged.
            _echo(
                f"batcher: the page is at {url} (Ctrl-C to stop; only this address opens it)",
                err=True,
            )
            if password is not None and password.generated:
                _echo(
                    f"batcher: the page's password, made for this start: {password.text}", err=True
                )
            _echo(url)

        # Ctrl-C or a service manager's SIGTERM: the server stops; a run in progress is
        # stopped gracefully first (in-flight requests finish, the report is written).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            asyncio.run(serve_page(settings, options, port, announce))
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port", 2)
