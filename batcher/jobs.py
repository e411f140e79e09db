"""What one run is asked to do, with the defaults and checks every face of batcher shares.

The CLI, the web page and a Python caller all build their `Job` with `build_job`, so that an
option means the same everywhere: `--remove-all-tags` implies remove, `--sandbox` loads the
fixture beside the input, the report goes to `<input name>-report.csv` in the working directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from batcher.config import Settings, config_path
from batcher.errors import ConfigError, UsageError
from batcher.loading import InputOptions, InputTable, parse_tags
from batcher.models import Chunk
from batcher.sandbox import SandboxConfig, load_config
from batcher.sharding import Shard, resolve_shard

__all__ = [
    "SANDBOX_FIXTURE_NAME",
    "Job",
    "RowsFilter",
    "build_job",
    "default_report_path",
    "sandbox_config",
]

SANDBOX_FIXTURE_NAME = "sandbox-fixture.json"

# Rewrites the input's rows, a chunk at a time, before the ledger saves them.
RowsFilter = Callable[[Iterator[Chunk]], Iterator[Chunk]]


@dataclass(frozen=True)
class Job:
    """What one `batcher run`/`plan` was asked to do.

    `allow_empty`: a file with a header and no rows is "nothing to do" (exit 0), not an error.
    `sandbox`: the emulator to start on loopback and send to instead of the API.
    `rows`: rewrites the input's rows before they are saved (`batcher undo` gives its rows with
    nothing to undo their own message); not part of what identifies the run.
    `shard`: take only the rows of this shard (see `batcher.sharding`); `shards`: the shard count
    asked for with no index (a plan shows the spread over it; a run refuses).
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

    def chunks(self, table: InputTable) -> Iterator[Chunk]:
        """The input's rows as the ledger saves them: the file's, through `rows` if given."""
        chunks = table.chunks()
        return chunks if self.rows is None else self.rows(chunks)


def default_report_path(input_path: Path) -> Path:
    """`<input name without extensions>-report.csv` in the working directory."""
    name = input_path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt", ".xlsx", ".xlsm"):
        name = name.removesuffix(suffix)
    return Path(f"{name}-report.csv")


def sandbox_config(config_file: Path | None, input_path: Path) -> SandboxConfig:
    """The embedded emulator: the config's [sandbox] table, and the input's fixture if any.

    A `sandbox-fixture.json` beside the input (as in samples/) gives the contacts their state, so
    the demo shows every kind of outcome; without one every well-formed id exists, untagged.
    """
    source = config_path(config_file)
    try:
        config = load_config(source) if source is not None else SandboxConfig()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    fixture = input_path.parent / SANDBOX_FIXTURE_NAME
    if config.fixture is None and fixture.is_file():
        config = dataclasses.replace(config, fixture=fixture)
    return config


def build_job(
    settings: Settings,
    input_path: Path,
    *,
    config_file: Path | None = None,
    action: str | None = None,
    tags: str | None = None,
    remove_all_tags: bool = False,
    location_id: str | None = None,
    id_column: str | None = None,
    sheet: str | None = None,
    report_path: Path | None = None,
    sandbox: bool = False,
    fresh: bool = False,
    allow_empty: bool = False,
    delimiter: str | None = None,
    shard: str | None = None,
    shards: str | None = None,
) -> Job:
    """A Job from option values as a user gives them (None: not given).

    The shard comes from `shard` ("K/N"), else $BATCHER_SHARD, else `shards` with the scheduler's
    index variable (`batcher.sharding.resolve_shard`).
    """
    chosen_shard, shard_count = resolve_shard(shard, shards)
    if remove_all_tags:
        if action is not None and action.lower() == "add":
            raise UsageError("--remove-all-tags goes with --action remove, not add")
        if tags is not None:
            raise UsageError("--remove-all-tags sends no tags: drop --tags")
        action = "remove"
    default_location = settings.api.location_id
    config = sandbox_config(config_file, input_path) if sandbox else None
    if config is not None and not default_location:
        default_location = config.default_location
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
        max_tag_length=settings.input.max_tag_length,
        max_cell_kb=settings.input.max_cell_kb,
        max_line_kb=settings.input.max_line_kb,
        max_inflate_ratio=settings.input.max_inflate_ratio,
        delimiter=delimiter,
    )
    return Job(
        input_path=input_path,
        input=options,
        report_path=report_path,
        fresh=fresh,
        sandbox=config,
        allow_empty=allow_empty,
        shard=chosen_shard,
        shards=shard_count if chosen_shard is None else None,
    )
