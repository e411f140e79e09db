"""The commands (SPEC "Commands"): parse options, call the library, print.

Thin on purpose (DESIGN.md): what a command does is in the library (`batcher.app`: the Job with
the defaults every face shares, `execute`, `undo`, `status`, `merge_reports`); a command turns
options into calls, asks for confirmation on a terminal, draws progress on stderr when it is a
terminal, prints the lines `batcher.cli.output` makes, and maps every error to one line and
SPEC's exit code (`batcher.cli.failures`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click

from batcher import __version__
from batcher.app.emulator import emulator_config, serve_emulator, serve_fixture
from batcher.app.execute import execute
from batcher.app.jobs import build_job
from batcher.app.merging import merge_reports
from batcher.app.result import RunResult
from batcher.app.resume import resume_job
from batcher.app.settings import load_settings
from batcher.app.sharding import resolve_shard, spread
from batcher.app.status import input_status, list_runs
from batcher.app.undo import UndoResult
from batcher.app.undo import undo as run_undo
from batcher.cli import options as opt
from batcher.cli import output
from batcher.cli.failures import fail, one_line_errors
from batcher.cli.terminal import (
    advise,
    confirm,
    echo,
    echo_all,
    json_logs,
    notify,
    prints_text,
    progress,
    scrubber,
    set_logging,
    warn,
)
from batcher.domain.config import Settings
from batcher.domain.errors import UsageError
from batcher.support import logs
from batcher.support.stopping import Stop, signals_stop

__all__ = ["STRICT_EXIT", "main"]

# `run --strict`: the run settled, but unfinished runs of other inputs wait in the state
# directory. Not 1-3 (those say what happened to this run's rows); 4 is free in SPEC's table.
STRICT_EXIT = 4


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batcher")
def main() -> None:
    """Apply tag changes to large contact lists through the bulk contact-tags API."""
    set_logging("text")  # commands with --log-format choose again


def _settings(
    config_file: Path | None, base_url: str | None = None, **overrides: object
) -> Settings:
    return load_settings(
        config_file, overrides={"api.base_url": base_url, **overrides}, warn=notify
    )


def _run_job(
    options: dict[str, Any],
    *,
    dry_run: bool,
    quiet: bool,
    yes: bool,
    rejects: Path | None = None,
    resume: str | None = None,
) -> tuple[Settings, RunResult]:
    """Build the job (`build_job` from the options; with `resume`, the unfinished run of that
    id from its state alone) and execute it, one line and the exit code for any error."""
    holder: list[Settings] = []
    log_format = options.pop("log_format", None) or "text"
    set_logging(log_format.lower(), quiet=quiet)
    with one_line_errors(lambda: holder[0] if holder else None):
        config_file = options.pop("config_file")
        settings = _settings(
            config_file,
            options.pop("base_url", None),
            **{
                "limits.drip": options.pop("drip"),
                "run.until_window_end": options.pop("until_window_end") or None,
            },
        )
        holder.append(settings)
        logs.set_scrubber(scrubber(settings))
        if resume is None:
            job = build_job(settings, config_file=config_file, **options)
        else:
            settings, job = resume_job(
                settings, resume, report_path=options["report_path"], config_file=config_file
            )
        stop = Stop()
        with signals_stop(stop), progress(quiet or dry_run) as tick:
            return settings, asyncio.run(
                execute(
                    settings,
                    job,
                    dry_run=dry_run,
                    on_tick=tick,
                    events=logs.emit,
                    # The sandbox changes no real contact: nothing to confirm.
                    confirm=None if dry_run or job.sandbox is not None else confirm(yes),
                    stop=stop,
                    rejects=rejects,
                )
            )
    raise AssertionError("unreachable: one_line_errors exits")  # pragma: no cover


@main.command()
@opt.with_options(opt.job_options())
@opt.YES
@opt.STRICT
def run(quiet: bool, yes: bool, **options: Any) -> None:
    """Send the tag operations in INPUT and write the report.

    Exit status: 0 all rows settled, 1 some rows failed (run again to retry them),
    2 usage/config/input error (nothing sent), 3 stopped early (run again to resume),
    4 (with --strict) settled, but unfinished runs of other inputs wait (see `status`).
    """
    strict = options.pop("strict")
    _, result = _run_job(options, dry_run=False, quiet=quiet, yes=yes)
    _summary(result, strict=strict)
    sys.exit(_exit_code(result, strict=strict))


@main.command()
@click.argument("run_id", metavar="RUN_ID")
@opt.CONFIG
@opt.report("Report file: .csv, .xlsx or .jsonl (default: where the run's last report went).")
@opt.with_options(opt.drip_options())
@opt.QUIET
@opt.LOG_FORMAT
@opt.YES
@opt.STRICT
def resume(quiet: bool, yes: bool, strict: bool, run_id: str, **options: Any) -> None:
    """Finish the unfinished run RUN_ID from its saved state: the input file is not needed.

    For a run whose input is gone or changed (the next night's export replaced it): every row
    was saved when the run started. Same pacing, report and exit status as `run`; the report
    goes where the run's last report went unless --report; the drip and the send window are
    the config's, or --drip and --until-window-end, as for `run`. `batcher status` lists the
    runs and names this command for each unfinished one.
    """
    _, result = _run_job(options, dry_run=False, quiet=quiet, yes=yes, resume=run_id)
    _summary(result, strict=strict)
    sys.exit(_exit_code(result, strict=strict))


def _exit_code(result: RunResult, *, strict: bool) -> int:
    """The run's exit status; with --strict, 4 when the run itself settled (0) but unfinished
    runs of other inputs are in the state directory (cron alerts; `status` names them)."""
    if strict and result.exit_code == 0 and result.others:
        return STRICT_EXIT
    return result.exit_code


def _summary(result: RunResult, *, strict: bool = False) -> None:
    """The summary on stdout (text logs, not quiet: JSON logs have it as their `run.finished`
    event), the unfinished runs of other inputs (errors with --strict) and the last word on
    stderr: an error when a person must act (see `BatcherError.needs_person`)."""
    if prints_text():
        echo_all(output.summary_lines(result))
    for message, other in output.other_runs(result):
        warn(message, error=strict, input=other.input, run_id=other.run_id)
    said = output.advice(result)
    if said is not None:
        advise(said, error=result.stopped is not None and result.stopped.needs_person)


@main.command()
@opt.with_options(opt.job_options())
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
        quiet=quiet,
        yes=True,
        rejects=rejects_path,
    )
    if result.stopped is not None:
        fail(f"{result.stopped}; nothing was sent (plan sends nothing)", 3)
    if json_logs():
        return  # the plan is the `plan.finished` object on stdout
    echo_all(output.plan_lines(result, settings, rejects_path))
    if result.shard is None and shards is not None:
        count = int(shards)
        loads = spread(result.rows_per_location, dict(result.per_location), count)
        lines, warning = output.shard_lines(result, loads, count, settings)
        echo_all(lines)
        if warning is not None:
            echo(warning, err=True)


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
    with one_line_errors(lambda: None):
        count = None if shards is None else _shard_count(shards)
        lines, unsettled = output.merge_lines(merge_reports(list(reports), out, shards=count))
        echo_all(lines)
        if unsettled is not None:
            echo(unsettled, err=True)


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
        config = emulator_config(
            config_file=config_file,
            port=port,
            token=token,
            rate=rate,
            faults=faults,
            fixture=fixture,
            public=public,
        )
    except UsageError as exc:
        fail(str(exc), 2)

    def announce(url: str) -> None:
        echo(f"batcher sandbox listening on {url} (Ctrl-C to stop)", err=True)
        echo(url)

    # Ctrl-C is how the sandbox is stopped: a plain KeyboardInterrupt, caught right here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        asyncio.run(serve_emulator(config, announce, warn=notify))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        fail(f"cannot listen on {where} ({exc.strerror}); choose another --port", 2)


@main.command()
@opt.with_options(opt.undo_options())
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
    set_logging("text", quiet=quiet)
    with one_line_errors(lambda: holder[0] if holder else None):
        settings = _settings(config_file, base_url)
        holder.append(settings)
        stop = Stop()
        with signals_stop(stop), progress(quiet or dry_run) as tick:
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
                    on_tick=tick,
                    notify=notify,
                    confirm=None if dry_run or sandbox else confirm(yes),
                    stop=stop,
                )
            )
    assert result is not None  # one_line_errors exits otherwise
    if dry_run:
        if result.run.stopped is not None:
            fail(f"{result.run.stopped}; nothing was sent (--plan sends nothing)", 3)
        echo_all(output.undo_plan_lines(report, result.run, result.source))
        return
    _summary(result.run)
    if prints_text():
        echo(output.undo_line(result.source))
    sys.exit(result.exit_code)


@main.command()
@opt.with_options(opt.run_identity(input_required=False))
def status(input_path: Path | None, config_file: Path | None, **options: Any) -> None:
    """The runs in the state directory and how far each got; with INPUT (and the options given
    to `run` that say which run: the operation, target and shard), the run that the same `run`
    command would continue. Changes nothing; works while a run is going."""
    holder: list[Settings] = []
    with one_line_errors(lambda: holder[0] if holder else None):
        settings = _settings(config_file, options.pop("base_url"))
        holder.append(settings)
        if input_path is None:
            _list_runs(Path(settings.state.dir), options, config_file)
            return
        job = build_job(settings, input_path, config_file=config_file, **options)
        found = input_status(settings, job)
    echo_all(output.input_status_lines(found))


def _list_runs(state_dir: Path, options: dict[str, Any], config_file: Path | None) -> None:
    """`status` alone: every run in the state directory (an option that names a run needs
    INPUT)."""
    given = [name for name, value in options.items() if value not in (None, False)]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} goes with INPUT: give the input file too")
    runs = list_runs(state_dir)
    if not runs:
        echo(f"batcher: no runs in {state_dir}")
        return
    echo(f"batcher: {len(runs):,} run{'s' if len(runs) != 1 else ''} in {state_dir}")
    for found in runs:
        echo_all(output.run_lines(found, config_file))


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
    "--fixture",
    type=click.Path(path_type=Path),
    help="With --sandbox: the JSON contact universe (default: [sandbox] fixture, else "
    "sandbox-fixture.json here or in ./samples).",
)
@opt.CONFIG
def serve_command(
    port: int, host: str, sandbox: bool, fixture: Path | None, config_file: Path | None
) -> None:
    """Serve the web page for uploads: plan, run, watch, stop, download the report.

    Prints the page's address once, with a secret made at this start: only that address (or,
    beyond loopback, the password) opens the page.
    """
    from batcher.web import WebOptions, check_bind, serve_page  # aiohttp.web: only when serving

    holder: list[Settings] = []
    with one_line_errors(lambda: holder[0] if holder else None):
        settings = _settings(config_file)
        holder.append(settings)
        password = check_bind(settings, host)
        if fixture is not None and not sandbox:
            fail("--fixture goes with --sandbox (the real API has its own contacts)", 2)
        options = WebOptions(
            config_file=config_file,
            sandbox=sandbox,
            fixture=serve_fixture(config_file, fixture) if sandbox else None,
            host=host,
            password=password.text if password is not None else "",
            warn=warn,
        )

        def announce(url: str) -> None:
            # The only lines that hold the secret (and a password made here): never logged.
            echo(
                f"batcher: the page is at {url} (Ctrl-C to stop; only this address opens it)",
                err=True,
            )
            if password is not None and password.generated:
                echo(
                    f"batcher: the page's password, made for this start: {password.text}", err=True
                )
            echo(url)

        # Ctrl-C or a service manager's SIGTERM: the server stops; a run in progress is
        # stopped gracefully first (in-flight requests finish, the report is written).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            asyncio.run(
                serve_page(settings, options, port, announce, say=lambda line: echo(line, err=True))
            )
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port", 2)
