"""Every option of the commands, defined once (SPEC "Commands").

The options that say which run a command means (the input, the operation asked, its target, the
shard: SPEC "Runs and resuming") are one list, `run_identity`, that `run`, `plan` and `status`
take, so that `status INPUT` with `run`'s options finds the run that `run` continues; `undo`
takes the same `--config`, `--base-url`, `--sandbox`, `--report`, `--fresh`, `--yes` and
`--quiet`, each told in its own words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from batcher.support import logs

__all__ = [
    "CONFIG",
    "LOG_FORMAT",
    "QUIET",
    "STRICT",
    "YES",
    "Decorator",
    "base_url",
    "fresh",
    "job_options",
    "report",
    "run_identity",
    "sandbox",
    "undo_options",
    "with_options",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    help="TOML settings (default: ./batcher.toml if present).",
)
YES = click.option("--yes", is_flag=True, help="Do not ask for confirmation before sending.")
QUIET = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Print nothing on success: no progress bar, no summary (it is in the summary file); "
    "warnings and errors only, on stderr.",
)


LOG_FORMAT = click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS, case_sensitive=False),
    default="text",
    show_default=True,
    help="Lines on stderr: text for people, json for one JSON object per event (cron, log "
    "collectors); with json, stdout carries the summary as one JSON object, nothing else.",
)
STRICT = click.option(
    "--strict",
    is_flag=True,
    help="Exit 4 (instead of 0) when this run settled but unfinished runs of other inputs "
    "are in the state directory (their rows wait: `batcher status` names the command that "
    "finishes each), and say so as errors: for cron to alert.",
)


def base_url(help: str = "API base URL (default: api.base_url).") -> Decorator:
    return click.option("--base-url", help=help)


def sandbox(
    help: str = "Run against the embedded emulator on loopback (no token needed).",
) -> Decorator:
    return click.option("--sandbox", is_flag=True, help=help)


def report(
    help: str = "Report file: .csv, .xlsx or .jsonl (default: INPUT-report.csv here).",
) -> Decorator:
    return click.option("--report", "report_path", type=click.Path(path_type=Path), help=help)


def fresh(
    help: str = "Start a new run even if an unfinished run of this input exists.",
) -> Decorator:
    return click.option("--fresh", is_flag=True, help=help)


def run_identity(*, input_required: bool = True) -> list[Decorator]:
    """The options that say which run a command means: `run`, `plan` and `status` take these,
    from this one list."""
    return [
        click.argument(
            "input_path",
            metavar="INPUT" if input_required else "[INPUT]",
            required=input_required,
            type=click.Path(path_type=Path),
        ),
        CONFIG,
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
            "--email-column",
            help="The column of email addresses: a row without a contact id is resolved by its "
            "address (POST /contacts/search, read-only) before sending (else detected: email, "
            "E-mail...).",
        ),
        click.option(
            "--tags-column",
            metavar="NAME",
            help="The column holding the tags, when not named tags (else detected).",
        ),
        click.option(
            "--action-column",
            metavar="NAME",
            help="The column holding the action, when not named action (else detected).",
        ),
        click.option(
            "--location-column",
            metavar="NAME",
            help="The column holding the location id, when not named location_id (else detected).",
        ),
        click.option(
            "--sheet",
            help="Excel sheet to read: a name, or a position among the visible sheets "
            "(default: the first visible sheet).",
        ),
        base_url(),
        sandbox(),
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


def job_options() -> list[Decorator]:
    """The options shared by `run` and `plan` (SPEC "Commands"): which run, then how it goes."""
    return [
        *run_identity(),
        report(),
        fresh(),
        click.option(
            "--allow-empty",
            is_flag=True,
            help="A file with a header and no rows is 'nothing to do' (exit 0), not an error.",
        ),
        *drip_options(),
        QUIET,
        LOG_FORMAT,
    ]


def drip_options() -> list[Decorator]:
    """The drip and the send window's stop, shared by `run`, `plan` and `resume` (a resumed
    run goes at the pace its command gives, as `run` does)."""
    return [
        click.option(
            "--drip",
            metavar="N/PERIOD",
            help="At most N contacts per location per PERIOD (s, m, h or d), e.g. 500/15m, so "
            "that the CRM's automations are not set off for every contact at once "
            "(limits.drip, limits.contacts_per_hour).",
        ),
        click.option(
            "--until-window-end",
            is_flag=True,
            help="Outside the send window (run.window), or when nothing more can go before it "
            "ends, stop (exit 3, rows pending) instead of waiting: for cron.",
        ),
    ]


def undo_options() -> list[Decorator]:
    """`undo`'s options: the run's report, then the options it shares with `run`."""
    return [
        click.argument("report", metavar="REPORT", type=click.Path(path_type=Path)),
        CONFIG,
        base_url("API base URL (default: api.base_url): where the run went."),
        sandbox("Undo against the embedded emulator on loopback (no token needed)."),
        report("The undo's own report: .csv, .xlsx or .jsonl (default: REPORT-undo.csv here)."),
        click.option(
            "--plan", "dry_run", is_flag=True, help="Show what the undo would send; send nothing."
        ),
        fresh("Start a new undo even if an unfinished undo of this report exists."),
        click.option(
            "--uncertain",
            type=click.Choice(["leave", "revert"], case_sensitive=False),
            default="leave",
            show_default=True,
            help="Rows marked uncertain (an answer was lost): leave them alone (skipped, exit 1), "
            "or revert them by the operation that was asked (remove the tags asked to add, add "
            "back the tags asked to remove).",
        ),
        click.option("--again", is_flag=True, help="Undo a run that was undone already."),
        YES,
        QUIET,
    ]


def with_options(options: list[Decorator]) -> Decorator:
    """One decorator applying `options` in the order listed (as if stacked in that order)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
