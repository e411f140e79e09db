"""The command line: parse options, call the runner, map errors to exit codes (SPEC "Commands").

Thin on purpose (DESIGN.md): everything a command does is in the library; this module only turns
options into a Job, draws progress on stderr when it is a terminal, and prints the summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from batcher import __version__
from batcher.config import DEFAULT_CONFIG_FILE, Settings, load_settings
from batcher.errors import BatcherError, ConfigError, Interrupted, UsageError
from batcher.loading import InputOptions, parse_tags
from batcher.models import Status
from batcher.runner import Job, RunResult, execute
from batcher.sandbox import SandboxConfig, config_from_options, load_config, serve

SANDBOX_FIXTURE_NAME = "sandbox-fixture.json"

STATUS_ORDER = (
    Status.SUCCESS,
    Status.ERROR,
    Status.INVALID,
    Status.DUPLICATE,
    Status.FAILED,
    Status.PENDING,
)


def _fail(exc: BaseException, code: int) -> None:
    click.echo(f"batcher: error: {exc}", err=True)
    sys.exit(code)


def _notify(message: str) -> None:
    click.echo(f"batcher: {message}", err=True)


def _job_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by `run` and `plan` (SPEC "Commands")."""
    options = [
        click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path)),
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
        click.option("--tags", help='The tags for every row, e.g. "vip,newsletter".'),
        click.option(
            "--remove-all-tags",
            is_flag=True,
            help="Remove every tag from the contacts (implies --action remove).",
        ),
        click.option("--location-id", help="The location for every row (else column, config)."),
        click.option("--id-column", help="The column holding the contact id (else detected)."),
        click.option("--sheet", help="Excel sheet to read (default: the first)."),
        click.option("--base-url", help="API base URL (default: api.base_url)."),
        click.option(
            "--report",
            "report_path",
            type=click.Path(path_type=Path),
            help="Report file: .csv, .xlsx or .jsonl (default: INPUT-report.csv here).",
        ),
        click.option(
            "--sandbox",
            is_flag=True,
            help="Run against the embedded emulator on loopback (no token needed).",
        ),
        click.option(
            "--fresh",
            is_flag=True,
            help="Start a new run even if an unfinished run of this input exists.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _build(
    *,
    input_path: Path,
    config_file: Path | None,
    action: str | None,
    tags: str | None,
    remove_all_tags: bool,
    location_id: str | None,
    id_column: str | None,
    sheet: str | None,
    base_url: str | None,
    report_path: Path | None,
    sandbox: bool,
    fresh: bool,
) -> tuple[Settings, Job]:
    settings = load_settings(config_file, overrides={"api.base_url": base_url})
    if remove_all_tags:
        if action == "add":
            raise UsageError("--remove-all-tags goes with --action remove, not add")
        if tags is not None:
            raise UsageError("--remove-all-tags sends no tags: drop --tags")
        action = "remove"
    default_location = settings.api.location_id
    sandbox_config = _sandbox_config(config_file, input_path) if sandbox else None
    if sandbox_config is not None and not default_location:
        default_location = min(sandbox_config.locations)
    options = InputOptions(
        id_column=id_column,
        sheet=sheet,
        action=action.lower() if action else None,
        tags=parse_tags(tags) if tags is not None else None,
        remove_all=remove_all_tags,
        location_id=location_id,
        default_location_id=default_location,
        id_pattern=settings.input.id_pattern,
        encoding=settings.input.encoding,
    )
    job = Job(
        input_path=input_path,
        input=options,
        report_path=report_path,
        fresh=fresh,
        sandbox=sandbox_config,
    )
    return settings, job


def _sandbox_config(config_file: Path | None, input_path: Path) -> SandboxConfig:
    """The embedded emulator: the config's [sandbox] table, and the input's fixture if any.

    A `sandbox-fixture.json` beside the input (as in samples/) gives the contacts their state, so
    the demo shows every kind of outcome; without one every well-formed id exists, untagged.
    """
    if config_file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        config_file = Path(DEFAULT_CONFIG_FILE)
    try:
        config = load_config(config_file) if config_file is not None else SandboxConfig()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    fixture = input_path.parent / SANDBOX_FIXTURE_NAME
    if config.fixture is None and fixture.is_file():
        config = dataclasses.replace(config, fixture=fixture)
    return config


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal; nothing for cron and pipes."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("requests", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _counts(result: RunResult) -> list[str]:
    return [f"  {s.value:<9}  {result.counts[s]:>9,}" for s in STATUS_ORDER]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batcher")
def main() -> None:
    """Apply tag changes to large contact lists through the bulk contact-tags API."""


@main.command()
@_job_options
def run(quiet: bool, **options: Any) -> None:
    """Send the tag operations in INPUT and write the report.

    Exit status: 0 all rows settled, 1 some rows failed (run again to retry them),
    2 usage/config/input error (nothing sent), 3 stopped early (run again to resume).
    """
    try:
        settings, job = _build(**options)
        with _progress(quiet) as progress:
            result = asyncio.run(execute(settings, job, on_progress=progress, notify=_notify))
    except BatcherError as exc:
        _fail(exc, exc.exit_code)
        return
    except KeyboardInterrupt:
        # Outside the sending phase (loading, report): nothing in flight; what is saved is kept.
        _fail(Interrupted("interrupted; run the same command again to resume"), 3)
        return
    total = sum(result.counts.values())
    verb = "stopped" if result.stopped is not None else "finished"
    click.echo(
        f"batcher: run {verb} in {result.seconds:.1f} s: {total:,} rows, "
        f"report {result.report_path}"
        + (" (continued an unfinished run)" if result.resumed else "")
    )
    for line in _counts(result):
        click.echo(line)
    click.echo(
        f"  requests {result.requests:,} (retries {result.retries:,}, 429s {result.rate_limited:,})"
    )
    if result.stopped is not None:
        click.echo(
            f"batcher: stopped: {result.stopped}; run the same command again to resume", err=True
        )
    elif result.counts[Status.FAILED]:
        click.echo("batcher: some rows failed; run the same command again to retry them", err=True)
    sys.exit(result.exit_code)


@main.command()
@_job_options
def plan(quiet: bool, **options: Any) -> None:
    """Read and check INPUT and show what `run` would send; send nothing."""
    options.pop("report_path")
    try:
        settings, job = _build(report_path=None, **options)
        result = asyncio.run(execute(settings, job, dry_run=True))
    except BatcherError as exc:
        _fail(exc, exc.exit_code)
        return
    except KeyboardInterrupt:
        _fail(Interrupted("interrupted"), 3)
        return
    total = sum(result.counts.values())
    limits = settings.limits
    seconds = result.plan.seconds_at(limits.requests_per_interval, limits.interval_ms / 1000)
    resumed = " (an unfinished run: rows already settled are not sent again)"
    click.echo(
        f"batcher: plan for {job.input_path}: {total:,} rows{resumed if result.resumed else ''}"
    )
    for status in STATUS_ORDER:
        if result.counts[status]:
            name = "to send" if status is Status.PENDING else status.value
            click.echo(f"  {name:<9}  {result.counts[status]:>9,}")
    groups = result.plan.groups
    click.echo(
        f"  {result.plan.requests:,} requests in {groups:,} group{'s' if groups != 1 else ''}; "
        f"at least {seconds:,.0f} s at {limits.requests_per_interval} requests per "
        f"{limits.interval_ms / 1000:g} s"
    )


@main.command()
@click.option("--port", type=int, help="Port on 127.0.0.1 (default: any free port).")
@click.option("--token", help='The bearer token it accepts (default "sandbox-token").')
@click.option("--rate", help='Rate limit: "100/10000", "100/10000,daily=200000" or "off".')
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
def sandbox(
    port: int | None,
    token: str | None,
    rate: str | None,
    faults: str | None,
    fixture: Path | None,
    config_file: Path | None,
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
        )
    except ValueError as exc:
        _fail(exc, 2)
        return

    def announce(url: str) -> None:
        click.echo(f"batcher sandbox listening on {url} (Ctrl-C to stop)", err=True)
        click.echo(url)

    try:
        asyncio.run(serve(config, announce))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        _fail(OSError(f"cannot listen on {where} ({exc.strerror}); choose another --port"), 2)
