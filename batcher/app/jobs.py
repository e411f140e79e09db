"""What one run is asked to do, with the defaults and checks every face of batcher shares.

The CLI, the web page and a Python caller all build their `Job` with `build_job`, so that an
option means the same everywhere: `--remove-all-tags` implies remove, `--sandbox` loads the
fixture beside the input, the report goes to `<input name>-report.csv` in the working directory.

A Job says what was asked, and settings stay settings: what the input options leave unsaid
(the default location, the id pattern, the encoding, the longest tag, how much of a file is
read) is taken from the run's settings when it runs (`input_options`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batcher.app.emulator import SandboxConfig, sandbox_config
from batcher.app.sharding import Shard, resolve_shard
from batcher.domain.config import Settings
from batcher.domain.errors import UsageError
from batcher.domain.models import Chunk
from batcher.loading import Caps, InputOptions, InputTable, parse_tags

__all__ = [
    "Job",
    "Recorded",
    "RowsFilter",
    "build_job",
    "default_report_path",
    "describe_operation",
    "input_options",
    "tags_text",
]

_ACTIONS = ("add", "remove")
# Rewrites the input's rows, a chunk at a time, before the ledger saves them.
RowsFilter = Callable[[Iterator[Chunk]], Iterator[Chunk]]


@dataclass(frozen=True)
class Recorded:
    """An unfinished run to finish from its state alone (`batcher resume RUN_ID`): its key, id,
    operation and target as its state records them. Every row, with all its columns, is in the
    state; the input file is not read (it may be gone: the next night's export replaced it)."""

    key: str
    run_id: str
    operation: str
    target: str


@dataclass(frozen=True)
class Job:
    """What one `batcher run`/`plan` was asked to do.

    `input`: how to read the input; what it leaves unsaid comes from the settings
    (`input_options`). `allow_empty`: a file with a header and no rows is "nothing to do"
    (exit 0), not an error. `sandbox`: the emulator to start on loopback and send to instead of
    the API. `rows`: rewrites the input's rows before they are saved (`batcher undo` gives its
    rows with nothing to undo their own message); not part of what identifies the run.
    `shard`: take only the rows of this shard (see `batcher.app.sharding`); `shards`: the shard
    count asked for with no index (a plan shows the spread over it; a run refuses).
    `undoes`: for an undo, the id of the run it takes back (kept in the undo's state, and part
    of what identifies it: each run's undo is a run of its own).
    `shown_as` and `described_as`: what the run's summary and messages call the input and the
    operation, when not the input's path and the options in words (an undo names the report
    it takes back); neither is part of what identifies the run. `input_name`: the file's name
    as the person knows it when it is stored under another (the page keeps an upload as
    `input.csv`): kept in the run's meta for `batcher status`. `resumes`: the unfinished run
    this job finishes from its state alone (see `batcher.app.resume`), its input not read.
    `write_report` False: no report file (a Python caller reads the rows from the ledger:
    `batcher.app.api`).
    """

    input_path: Path
    input: InputOptions
    report_path: Path | None = None
    fresh: bool = False
    sandbox: SandboxConfig | None = None
    allow_empty: bool = False
    rows: RowsFilter | None = None
    shard: Shard | None = None
    shards: int | None = None
    undoes: str | None = None
    shown_as: Path | None = None
    described_as: str | None = None
    input_name: str | None = None
    resumes: Recorded | None = None
    write_report: bool = True

    def chunks(self, table: InputTable) -> Iterator[Chunk]:
        """The input's rows as the ledger saves them: the file's, through `rows` if given."""
        chunks = table.chunks()
        return chunks if self.rows is None else self.rows(chunks)

    @property
    def shown_input(self) -> Path:
        """What the run's summary and messages call its input."""
        return self.input_path if self.shown_as is None else self.shown_as


def input_options(settings: Settings, job: Job) -> InputOptions:
    """How a run reads its input: the job's options, each one it leaves unsaid from `settings`
    (the default location: `api.location_id`, else the sandbox's own default location)."""
    asked, given = job.input, settings.input
    location = asked.default_location_id
    if location is None:
        location = settings.api.location_id
        if not location and job.sandbox is not None:
            location = job.sandbox.default_location
    return dataclasses.replace(
        asked,
        default_location_id=location,
        id_pattern=given.id_pattern if asked.id_pattern is None else asked.id_pattern,
        encoding=given.encoding if asked.encoding is None else asked.encoding,
        max_tag_length=given.max_tag_length
        if asked.max_tag_length is None
        else asked.max_tag_length,
        caps=Caps(
            cell_chars=given.max_cell_kb * 1024,
            line_bytes=given.max_line_kb * 1024,
            inflate_ratio=given.max_inflate_ratio,
        )
        if asked.caps is None
        else asked.caps,
    )


def describe_operation(job: Job, options: InputOptions, table: InputTable) -> str:
    """The operation in words (and the shard), for the summary, the confirmation and status;
    `options` as the run reads its input (`input_options`)."""
    if job.described_as is not None:
        return job.described_as
    # Plain words (the runs list shows them to people): what the row's own cells decide is said
    # as such, with the column it comes from.
    if options.remove_all:
        what = "remove all tags"
    else:
        tags = (
            json.dumps(list(options.tags), ensure_ascii=False)
            if options.tags is not None
            else f"each row's tags (column {table.tags_column})"
        )
        if options.action is not None:
            what = f"{options.action} {tags}"
        else:
            what = f"add or remove {tags} as each row's action says (column {table.action_column})"
    where = (
        f"location {options.location_id}"
        if options.location_id is not None
        else (
            f"each row's location (column {table.location_column})"
            if table.location_column is not None
            else f"location {options.default_location_id or '(none)'}"
        )
    )
    shard = "" if job.shard is None else f", shard {job.shard}"
    return f"{what} at {where}{shard}"


def default_report_path(input_path: Path) -> Path:
    """`<input name without extensions>-report.csv` in the working directory."""
    name = input_path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".xlsx", ".xlsm"):
        name = name.removesuffix(suffix)
    return Path(f"{name}-report.csv")


def tags_text(tags: str | Iterable[str] | None) -> str | None:
    """The tags as `--tags` gives them: text as it is ("a,b"), a list or tuple of tags as its
    JSON array (read back as that list, each tag checked like the file's); UsageError for
    anything else."""
    if tags is None or isinstance(tags, str):
        return tags
    if isinstance(tags, bytes | dict) or not isinstance(tags, Iterable):
        raise UsageError(f"tags: give a list of tags or one text, not {type(tags).__name__}")
    listed = list(tags)
    strange = [tag for tag in listed if not isinstance(tag, str)]
    if strange:
        raise UsageError(f"tags: each tag must be text, not {type(strange[0]).__name__}")
    return json.dumps(listed, ensure_ascii=False)


def _file_path(value: object, name: str) -> Path:
    """A path given as text or a Path; UsageError for rows or anything else."""
    if isinstance(value, str | os.PathLike):
        return Path(value)
    if isinstance(value, Iterable) or hasattr(value, "columns"):
        raise UsageError(
            f"{name}: build_job reads a file: give its path; for rows in memory (a list of "
            "dicts, a DataFrame) use batcher.apply(rows, ...) or batcher.plan(rows, ...)"
        )
    raise UsageError(f"{name}: give a file path, not {type(value).__name__}")


def build_job(
    settings: Settings,
    input_path: str | os.PathLike[str],
    *,
    config_file: str | os.PathLike[str] | None = None,
    action: str | None = None,
    tags: str | Iterable[str] | None = None,
    remove_all_tags: bool = False,
    location_id: str | None = None,
    id_column: str | None = None,
    email_column: str | None = None,
    tags_column: str | None = None,
    action_column: str | None = None,
    location_column: str | None = None,
    sheet: str | None = None,
    report_path: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    fresh: bool = False,
    allow_empty: bool = False,
    delimiter: str | None = None,
    encoding: str | None = None,
    shard: str | None = None,
    shards: str | None = None,
) -> Job:
    """A Job from option values as a user gives them (None: not given). Paths may be text;
    `tags` text ("a,b") or a list of tags (`tags_text`); rows in memory are refused (UsageError:
    `batcher.apply` takes them).

    The shard comes from `shard` ("K/N"), else $BATCHER_SHARD, else `shards` with the scheduler's
    index variable (`batcher.app.sharding.resolve_shard`). `encoding` (--encoding) overrides
    `input.encoding`.
    """
    path = _file_path(input_path, "input_path")
    config = None if config_file is None else _file_path(config_file, "config_file")
    report = None if report_path is None else _file_path(report_path, "report_path")
    if action is not None and (not isinstance(action, str) or action.lower() not in _ACTIONS):
        raise UsageError(f'action {action!r}: give "add" or "remove" (None: the action column)')
    tags = tags_text(tags)
    chosen_shard, shard_count = resolve_shard(shard, shards)
    if remove_all_tags:
        if action is not None and action.lower() == "add":
            raise UsageError("--remove-all-tags goes with --action remove, not add")
        if tags is not None:
            raise UsageError("--remove-all-tags sends no tags: drop --tags")
        action = "remove"
    try:
        fixed_tags = parse_tags(tags) if tags is not None else None
    except ValueError as exc:
        raise UsageError(f"--tags: {exc}") from None
    options = InputOptions(
        id_column=id_column,
        email_column=email_column,
        tags_column=tags_column,
        action_column=action_column,
        location_column=location_column,
        sheet=sheet,
        action=action.lower() if action else None,
        tags=fixed_tags,
        remove_all=remove_all_tags,
        location_id=location_id,
        encoding=encoding,
        delimiter=delimiter,
    )
    return Job(
        input_path=path,
        input=options,
        report_path=report,
        fresh=fresh,
        sandbox=sandbox_config(config, path) if sandbox else None,
        allow_empty=allow_empty,
        shard=chosen_shard,
        shards=shard_count if chosen_shard is None else None,
    )
