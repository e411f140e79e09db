"""The Python API (SPEC "The Python API"): rows in memory in, one result per row out.

`apply(rows, ...)` does what `batcher run` does, `plan(rows, ...)` what `batcher plan` does and
`undo(results_or_report, ...)` what `batcher undo` does, for a script that holds its rows in
memory (a list of dicts, a pandas DataFrame) and wants each row's outcome back, not a file.

How: the rows are written as an input file in a private folder of the state directory
(`batcher.loading.write_rows`: the same rows always give the same bytes) and run through
`execute` like any file, so every rule of SPEC "Input" holds and a run is identified, and
resumed, as the CLI's: the same rows, options and target continue an unfinished run. The file
is removed when the call returns. The rows come back from the run's ledger (`execute`'s
`read_rows`), never from a report file; a report file is written only when `report` is given.

Credentials are the caller's to give: `token` (one bearer token) goes into the settings'
environment (`Settings.environ`, read where the CLI reads `$BATCHER_TOKEN`), never into a file,
a log or an exception; without it the token is read as the CLI reads it.

`apply`, `plan` and `undo` run their own event loop (`asyncio.run`): from async code (a running
loop), await `apply_async`, `plan_async` and `undo_async`; the others refuse (UsageError).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from batcher.app.directory import workspace
from batcher.app.execute import execute
from batcher.app.jobs import build_job
from batcher.app.result import RunResult
from batcher.app.settings import load_settings
from batcher.app.stages.load import no_collections
from batcher.app.undo import UNCERTAIN_CHOICES
from batcher.app.undo import undo as undo_run
from batcher.domain.config import Settings, overridden
from batcher.domain.errors import BatcherError, InputError, UsageError
from batcher.domain.fields import LIST_FIELDS, RESULT_FIELDS, UNCERTAIN
from batcher.domain.models import Cell
from batcher.loading import rows_frame, write_rows
from batcher.state import RunInfo, runs_in
from batcher.state.codec import load
from batcher.support.stopping import Stop

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Results",
    "apply",
    "apply_async",
    "plan",
    "plan_async",
    "undo",
    "undo_async",
]

T = TypeVar("T")
P = ParamSpec("P")

# Where the rows given are written while a call runs, under the state directory.
_ROWS_DIR = "rows"
# The variables (in `Settings.environ` only) that hold the tokens of a mapping per location.
_LOCATION_TOKEN = "BATCHER_PYTHON_LOCATION_TOKEN_"
# What the run's summary and `batcher status` call rows given in Python.
_SHOWN_AS = Path("rows given in Python")

# One row of results: the report's fields (lists as lists, `uncertain` a bool, numbers as int
# or None), then the row's own columns as text.
ResultRow = dict[str, Any]


@dataclass(frozen=True)
class Results(Sequence[ResultRow]):
    """What `apply`, `plan` and `undo` return: one mapping per row given, in the order given,
    with the report's fields (SPEC "Report") and the row's own columns.

    `counts`: rows by status; `stopped`: why the run stopped early (None when it did not), the
    same error the CLI prints (its `exit_code`, its message saying what to do); `exit_code`:
    what `batcher run` would exit with; `report_path`: the report file, when one was asked;
    `run`: the run's whole result (requests, retries, timings: the JSON summary's facts).
    """

    columns: tuple[str, ...]
    rows: tuple[ResultRow, ...]
    run: RunResult
    state_dir: Path
    sandbox: bool
    planned: bool

    @overload
    def __getitem__(self, index: int) -> ResultRow: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ResultRow]: ...
    def __getitem__(self, index: int | slice) -> ResultRow | Sequence[ResultRow]:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ResultRow]:
        return iter(self.rows)

    @property
    def counts(self) -> Counter[str]:
        """Rows by status (`success`, `error`, `invalid`, `duplicate`, `failed`, `pending`...)."""
        return Counter({status.value: n for status, n in self.run.counts.items() if n})

    @property
    def stopped(self) -> BatcherError | None:
        """Why the run stopped early (a refused token, the daily quota, a stop asked for...);
        None when it ran to its end. Its rows not sent are `pending`: the same call resumes."""
        return self.run.stopped

    @property
    def exit_code(self) -> int:
        """What `batcher run` would exit with (SPEC "Exit status"): 0, 1 or 3."""
        return self.run.exit_code

    @property
    def report_path(self) -> Path | None:
        """The report file written, when `report` was given."""
        return self.run.report_path

    @property
    def run_id(self) -> str:
        """The run's id (as `batcher status` and the logs show it); "" for a plan."""
        return "" if self.planned else self.run.run_id

    def to_frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame, with `columns`."""
        return rows_frame(self.columns, self.rows)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items())
        stopped = "" if self.stopped is None else f", stopped: {self.stopped}"
        return f"<Results {len(self)} rows: {counts or 'none'}{stopped}>"


class _Rows:
    """Keeps the rows `execute` reads from the ledger, as result mappings."""

    def __init__(self) -> None:
        self.columns: tuple[str, ...] = RESULT_FIELDS
        self.rows: tuple[ResultRow, ...] = ()

    def __call__(self, columns: tuple[str, ...], rows: Iterator[tuple[Cell, ...]]) -> None:
        self.columns = columns
        with no_collections():  # a dict and lists per row, no cycle (see no_collections)
            self.rows = tuple(map(self._row, rows))

    def _row(self, cells: tuple[Cell, ...]) -> ResultRow:
        values: list[Any] = list(cells)
        for index in LIST_FIELDS:
            text = values[index]
            if text is not None:
                values[index] = list(load(str(text)) or ())
        values[UNCERTAIN] = values[UNCERTAIN] == "true"
        return dict(zip(self.columns, values, strict=True))


def _no_loop(name: str) -> None:
    """UsageError when called from a running event loop (asyncio.run cannot nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"batcher.{name}() runs its own event loop and cannot be called from async code; "
        f"use `await batcher.{name}_async(...)` there"
    )


def _blocking(call: Callable[P, Coroutine[Any, Any, T]], doc: str) -> Callable[P, T]:
    """`call` (an `..._async` function) for code without an event loop: the same arguments
    (for type checkers too), run on a loop of its own; `doc` is its docstring."""
    name = call.__name__.removesuffix("_async")

    @functools.wraps(call)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        _no_loop(name)
        return asyncio.run(call(*args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = name
    blocking.__doc__ = doc
    return blocking


def _path(value: object, name: str) -> Path:
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise UsageError(f"{name}: give a path (text or a Path), not {type(value).__name__}")


def _settings(
    config: Settings | str | os.PathLike[str] | None,
    *,
    base_url: str | None,
    state_dir: str | os.PathLike[str] | None,
    token: str | Mapping[str, str] | None,
) -> Settings:
    """The call's settings: `config` (a Settings, or a TOML file; None: ./batcher.toml if
    present, and BATCHER_* variables), with `base_url`, `state_dir` and `token` over it."""
    overrides = {
        "api.base_url": base_url,
        "state.dir": None if state_dir is None else str(_path(state_dir, "state_dir")),
    }
    if isinstance(config, Settings):
        settings = overridden(config, overrides)
    elif config is None or isinstance(config, str | os.PathLike):
        settings = load_settings(None if config is None else Path(config), overrides=overrides)
    else:
        raise UsageError(
            f"config: give a TOML file's path or a batcher.Settings, not {type(config).__name__}"
        )
    return settings if token is None else _with_tokens(settings, token)


def _with_tokens(settings: Settings, token: str | Mapping[str, str]) -> Settings:
    """`settings` sending with `token`: one token (in `api.token_env`'s place), or a token per
    location (Step 11's `[api.location_tokens]`, each under a variable name of its own). The
    tokens live in the settings' environment only (`Settings.environ`), never in a file."""
    environ = dict(os.environ if settings.environ is None else settings.environ)
    if isinstance(token, str):
        if not token.strip():
            raise UsageError("token: give the API token as non-empty text")
        environ[settings.api.token_env] = token.strip()
        return dataclasses.replace(settings, environ=environ)
    if not isinstance(token, Mapping) or not token:
        raise UsageError(
            "token: give the API token as text, or a mapping of location id to its token, "
            f"not {type(token).__name__}"
        )
    names: dict[str, str] = {}
    for number, (location, value) in enumerate(token.items()):
        if not isinstance(location, str) or not location.strip():
            raise UsageError("token: each key must be a location id (non-empty text)")
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"token: the token of location {location} must be non-empty text")
        names[location.strip()] = name = f"{_LOCATION_TOKEN}{number}"
        environ[name] = value.strip()
    api = dataclasses.replace(settings.api, location_tokens=names)
    return dataclasses.replace(settings, api=api, environ=environ)


async def apply_async(
    rows: Iterable[Mapping[str, object]] | pd.DataFrame,
    *,
    action: str | None = None,
    tags: str | Iterable[str] | None = None,
    remove_all_tags: bool = False,
    location_id: str | None = None,
    id_column: str | None = None,
    tags_column: str | None = None,
    action_column: str | None = None,
    location_column: str | None = None,
    base_url: str | None = None,
    token: str | Mapping[str, str] | None = None,
    config: Settings | str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    fresh: bool = False,
    allow_empty: bool = False,
    stop: Stop | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Results:
    """`apply` for async code: await it inside a running event loop."""
    return await _rows_run(
        rows,
        dry_run=False,
        action=action,
        tags=tags,
        remove_all_tags=remove_all_tags,
        location_id=location_id,
        id_column=id_column,
        tags_column=tags_column,
        action_column=action_column,
        location_column=location_column,
        base_url=base_url,
        token=token,
        config=config,
        state_dir=state_dir,
        report=report,
        sandbox=sandbox,
        fresh=fresh,
        allow_empty=allow_empty,
        stop=stop,
        on_progress=on_progress,
    )


apply = _blocking(
    apply_async,
    """Send the rows' tag operations, as `batcher run` does, and return each row's result.

    `rows`: mappings of column to value (a file's rows: a contact id column, and `tags`,
    `action`, `location_id` unless given here; other columns are kept) or a DataFrame.
    `action`, `tags` (text "a,b" or a list), `remove_all_tags`, `location_id`, `id_column`,
    `tags_column`, `action_column`, `location_column`: as the CLI's options. `base_url`,
    `token`, `config` (a TOML path or a Settings), `state_dir`: the target, the credential (one
    token, or a mapping of location id to its token) and the settings (else as the CLI finds
    them). `report`: also write a report file (CSV, XLSX or JSONL). `sandbox`: run against the
    embedded emulator. `fresh`: start a new run even if this one is unfinished. `stop`:
    `stop.request(why)` from another thread ends the run gracefully; `on_progress` hears
    (requests settled, planned).

    Raises UsageError (or a subclass: ConfigError, InputError) for wrong arguments, settings or
    rows, before anything is sent; a run stopped early raises nothing: see `Results.stopped`.
    """,
)


async def plan_async(
    rows: Iterable[Mapping[str, object]] | pd.DataFrame,
    *,
    action: str | None = None,
    tags: str | Iterable[str] | None = None,
    remove_all_tags: bool = False,
    location_id: str | None = None,
    id_column: str | None = None,
    tags_column: str | None = None,
    action_column: str | None = None,
    location_column: str | None = None,
    base_url: str | None = None,
    config: Settings | str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    sandbox: bool = False,
    allow_empty: bool = False,
) -> Results:
    """`plan` for async code: await it inside a running event loop."""
    return await _rows_run(
        rows,
        dry_run=True,
        action=action,
        tags=tags,
        remove_all_tags=remove_all_tags,
        location_id=location_id,
        id_column=id_column,
        tags_column=tags_column,
        action_column=action_column,
        location_column=location_column,
        base_url=base_url,
        token=None,
        config=config,
        state_dir=state_dir,
        report=None,
        sandbox=sandbox,
        fresh=False,
        allow_empty=allow_empty,
        stop=None,
        on_progress=None,
    )


plan = _blocking(
    plan_async,
    """What `apply` with the same arguments would do, as `batcher plan` shows it: nothing is
    sent, no token is needed and no state is kept. Each row's result is what is known before
    sending: `invalid` and `duplicate` rows as the run would report them, the others `pending`
    ("would be sent"); `run.plan.requests` is the requests the run would make.""",
)


async def _rows_run(
    rows: object,
    *,
    dry_run: bool,
    action: str | None,
    tags: str | Iterable[str] | None,
    remove_all_tags: bool,
    location_id: str | None,
    id_column: str | None,
    tags_column: str | None,
    action_column: str | None,
    location_column: str | None,
    base_url: str | None,
    token: str | Mapping[str, str] | None,
    config: Settings | str | os.PathLike[str] | None,
    state_dir: str | os.PathLike[str] | None,
    report: str | os.PathLike[str] | None,
    sandbox: bool,
    fresh: bool,
    allow_empty: bool,
    stop: Stop | None,
    on_progress: Callable[[int, int], None] | None,
) -> Results:
    """Write the rows as an input file in the state directory, run it, keep its rows."""
    settings = _settings(config, base_url=base_url, state_dir=state_dir, token=token)
    config_file = None if isinstance(config, Settings) or config is None else Path(config)
    home = Path(settings.state.dir)
    kept = _Rows()
    with workspace(home, _ROWS_DIR, keep_home=not dry_run) as folder:
        path = folder / "rows.csv"
        write_rows(rows, path)
        with _named_rows(path):
            job = build_job(
                settings,
                path,
                config_file=config_file,
                action=action,
                tags=tags,
                remove_all_tags=remove_all_tags,
                location_id=location_id,
                id_column=id_column,
                tags_column=tags_column,
                action_column=action_column,
                location_column=location_column,
                report_path=report,
                sandbox=sandbox,
                fresh=fresh,
                allow_empty=allow_empty,
            )
            job = dataclasses.replace(
                job,
                # The file says how it is written: nothing is sniffed or guessed.
                input=dataclasses.replace(job.input, encoding="utf-8", delimiter=","),
                shown_as=_SHOWN_AS,
                write_report=report is not None,
            )
            result = await execute(
                settings, job, dry_run=dry_run, stop=stop, on_progress=on_progress, read_rows=kept
            )
    return Results(
        columns=kept.columns,
        rows=kept.rows,
        run=result,
        state_dir=home,
        sandbox=sandbox,
        planned=dry_run,
    )


@contextlib.contextmanager
def _named_rows(path: Path) -> Iterator[None]:
    """An input error names the rows as the caller knows them, not their file (its line N is
    row N - 1 when no cell holds a line break: the header is line 1)."""
    try:
        yield
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), "rows")) from None


async def undo_async(
    results_or_report: Results | str | os.PathLike[str],
    *,
    uncertain: str = "leave",
    again: bool = False,
    base_url: str | None = None,
    token: str | Mapping[str, str] | None = None,
    config: Settings | str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    sandbox: bool | None = None,
    fresh: bool = False,
    dry_run: bool = False,
    stop: Stop | None = None,
) -> Results:
    """`undo` for async code: await it inside a running event loop."""
    given = results_or_report
    if isinstance(given, Results):
        if given.planned:
            raise UsageError("undo: these are a plan's results: nothing was sent, nothing to undo")
        state_dir = given.state_dir if state_dir is None else state_dir
        sandbox = given.sandbox if sandbox is None else sandbox
    elif not isinstance(given, str | os.PathLike):
        raise UsageError(
            "undo: give the Results of batcher.apply, or a run's report file, not "
            f"{type(given).__name__}"
        )
    if uncertain not in UNCERTAIN_CHOICES:
        raise UsageError(
            f"uncertain: give one of {', '.join(UNCERTAIN_CHOICES)}, not {uncertain!r}"
        )
    settings = _settings(config, base_url=base_url, state_dir=state_dir, token=token)
    config_file = None if isinstance(config, Settings) or config is None else Path(config)
    kept = _Rows()
    common: dict[str, Any] = {
        "report_path": None if report is None else _path(report, "report"),
        "write_report": report is not None,
        "sandbox": bool(sandbox),
        "config_file": config_file,
        "fresh": fresh,
        "dry_run": dry_run,
        "uncertain": uncertain,
        "again": again,
        "stop": stop,
        "read_rows": kept,
    }
    if isinstance(given, Results):
        done = await undo_run(settings, run=_run_of(settings, given), **common)
    else:
        done = await undo_run(settings, Path(given), **common)
    return Results(
        columns=kept.columns,
        rows=kept.rows,
        run=done.run,
        state_dir=Path(settings.state.dir),
        sandbox=bool(sandbox),
        planned=dry_run,
    )


undo = _blocking(
    undo_async,
    """Take a run back, as `batcher undo` does (SPEC "Undo"): the run of `results` (what
    `apply` returned; its state directory and sandbox unless given), or the run whose latest
    report is the file given. Returns the undo's own results: one row per operation, with
    `undoes_row` naming the run's row. `uncertain="revert"`, `again`, `dry_run` (nothing sent)
    as `--uncertain revert`, `--again`, `--plan`; the other arguments as for `apply`.""",
)


def _run_of(settings: Settings, results: Results) -> RunInfo:
    """The run `results` came from, as its state directory knows it."""
    state_dir = Path(settings.state.dir)
    found = [info for info in runs_in(state_dir) if info.run_id == results.run_id]
    if not found:
        raise UsageError(
            f"undo: no run {results.run_id} in {state_dir}: give the state_dir it ran with "
            f"(its state may have been pruned after state.keep_days = "
            f"{settings.state.keep_days} days)"
        )
    return found[-1]
