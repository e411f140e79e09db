"""The page's side of a run: the plan, one run at a time in a worker thread, its progress.

A run (and a plan) is `batcher.app.execute.execute`, exactly as the CLI calls it, in a thread of
its own with its own event loop: loading a file, SQLite and writing the report block, and the
page must keep answering (progress, stop) meanwhile. `Stop.request` is thread-safe, and progress
crosses threads as plain numbers read under the GIL. The plan's first invalid rows and the
report again as XLSX after a CSV run come from `batcher.app` (`inputs`, `export`).

What this module adds:
- a record of each run started from the page (`web/<run id>/run.json`), so that its report
  can be downloaded after a restart of the server. The report is written under a name made
  from the input's when that name is plain and short (`contacts-report.csv`), else under one of
  our own (`upload-report.csv`), and downloaded under one made from the input's (`download`);
  a download opens only a regular file of ours in the run's own folder, never through a link,
  whatever `run.json` says (`report_file`). Folders of runs older than `state.keep_days` go
  (`prune`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batcher import RunInfo
from batcher.app.emulator import sandbox_config
from batcher.app.execute import execute
from batcher.app.export import export_report
from batcher.app.inputs import first_rows
from batcher.app.jobs import Job, build_job
from batcher.app.result import Preview, RunProgress, RunResult
from batcher.app.undo import UndoResult, report_of, undo
from batcher.domain.config import Settings
from batcher.domain.errors import BatcherError
from batcher.domain.models import Row, Status
from batcher.support.crash import write_crash_file
from batcher.support.files import open_own_file, open_private, own_subdir
from batcher.support.secrets import Scrubber
from batcher.support.stopping import Stop

__all__ = [
    "ActiveRun",
    "Operation",
    "PlanView",
    "RunRecord",
    "Runs",
    "UndoPlan",
    "page_words",
    "resumable",
    "state_name",
]

# How many invalid rows the plan lists (their reasons; the report has them all).
INVALID_SHOWN = 20
# How many of the first rows the plan shows as read.
FIRST_SHOWN = 5
STATUS_ORDER = tuple(Status)
_RUN_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Operation:
    """The operation as the page's form gives it.

    `action`: "file" (the file's action column), "add", "remove" or "remove-all"; `tags` empty
    means the file's tags column; the other fields empty mean "not given".
    """

    action: str = "file"
    tags: str = ""
    location_id: str = ""
    id_column: str = ""
    sheet: str = ""
    # The code page chosen for an 8-bit CSV ("": input.encoding).
    encoding: str = ""
    # The columns of the tags, action and location chosen from the header ("": detected).
    tags_column: str = ""
    action_column: str = ""
    location_column: str = ""

    def job(
        self,
        settings: Settings,
        input_path: Path,
        *,
        config_file: Path | None,
        sandbox: bool,
        report_path: Path | None = None,
        fixture: Path | None = None,
    ) -> Job:
        """The Job `batcher run` would build from the same choices
        (`batcher.app.jobs.build_job`); its sandbox with `fixture` when given (the page's
        uploads are not beside the fixture their folder had: `serve_fixture`)."""
        remove_all = self.action == "remove-all"
        job = build_job(
            settings,
            input_path,
            config_file=config_file,
            action=self.action if self.action in ("add", "remove") else None,
            tags=None if remove_all or not self.tags.strip() else self.tags,
            remove_all_tags=remove_all,
            location_id=self.location_id.strip() or None,
            id_column=self.id_column.strip() or None,
            tags_column=self.tags_column.strip() or None,
            action_column=self.action_column.strip() or None,
            location_column=self.location_column.strip() or None,
            sheet=self.sheet.strip() or None,
            encoding=self.encoding.strip() or None,
            report_path=report_path,
            sandbox=sandbox,
        )
        if sandbox and fixture is not None:
            job = dataclasses.replace(
                job, sandbox=sandbox_config(config_file, input_path, fixture=fixture)
            )
        return job

    @classmethod
    def saved(cls, choices: dict[str, str]) -> Operation:
        """The operation a page run saved (`RunRecord.choices`); a field it did not know is
        left at its default."""
        known = {k: str(v) for k, v in choices.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def resumable(info: RunInfo, records: list[RunRecord]) -> RunRecord | None:
    """The page run whose saved choices continue the unfinished run `info` (the newest of the
    same input and operation, from an upload), or None: finished, or not started here."""
    if info.state == "finished":
        return None
    found = [
        record
        for record in records
        if record.upload_id
        and not record.undoes
        and record.input_path == info.input
        # Saved before the run said its operation (a server killed mid-run): the input decides.
        and record.operation in (info.operation, "")
    ]
    return max(found, key=lambda record: record.started, default=None)


# The CLI's advice, in the page's words: a run goes on with Resume in the runs list.
_CLI_WORDS = (
    (
        "name it with --id-column (or --email-column)",
        "choose it in the Contact id column list (or give the file an email column)",
    ),
    ("name it with --id-column", "choose it in the Contact id column list"),
    ("for --id-column", "(the Contact id column chosen)"),
    ("for --tags-column", "(the Tags column chosen)"),
    ("for --action-column", "(the Action column chosen)"),
    ("for --location-column", "(the Location column chosen)"),
    ("(or name it with --tags-column)", "(or choose it in the Tags column list)"),
    ("(or name it with --action-column)", "(or choose it in the Action column list)"),
    ("with --sheet", "in the Sheet list"),
    ("named by --sheet", "as chosen"),
    (
        "name the file's encoding: --encoding and the code page whose reading is right "
        "(or input.encoding)",
        "choose the encoding whose reading is right",
    ),
    ("running the same command again", "resuming the run"),
    ("run the same command again", "press Resume in the runs list"),
    ("start the same run again", "press Resume in the runs list"),
)


def page_words(text: str) -> str:
    """A message of the library's for the page: the command line's advice in the page's words."""
    for cli, page in _CLI_WORDS:
        text = text.replace(cli, page)
    return text


@dataclass
class PlanView:
    """A plan as the page shows it: the library's dry run, the first rows as read and the
    first invalid rows."""

    result: RunResult
    invalid: list[Row]
    first: list[Row] = field(default_factory=list)

    @property
    def to_send(self) -> int:
        return self.result.counts[Status.PENDING]


def plan(settings: Settings, job: Job) -> PlanView:
    """The dry run, in the calling thread (the page calls this in a worker thread)."""
    result = asyncio.run(execute(settings, job, dry_run=True))
    invalid = INVALID_SHOWN if result.counts[Status.INVALID] else 0
    look = first_rows(settings, job, FIRST_SHOWN, invalid)
    return PlanView(result, look.invalid, look.rows)


# A run's state as the page says it.
_STATE_NAMES = {"ready": "unfinished", "loading": "unfinished (stopped while loading)"}


def state_name(state: str) -> str:
    """A run's state (`RunInfo.state`) in plain words."""
    return _STATE_NAMES.get(state, state)


def undo_problem(info: RunInfo) -> str:
    """Why the run cannot be undone from the page ("" when it can): finished, and not undone
    yet. The undo reads the run's own records, whatever became of its report file."""
    if info.state != "finished":
        return (
            f"that run is {state_name(info.state)}: only a finished run can be undone "
            "(press Resume to finish it first)"
        )
    if info.undone is not None:
        when = info.undone.finished.replace("T", " ").replace("Z", " UTC")
        return (
            f"that run was undone on {when} (by {info.undone.by}); "
            "`batcher undo` with --again undoes it again"
        )
    return ""


@dataclass
class UndoPlan:
    """An undo's dry run as the page shows it, and the run it takes back."""

    info: RunInfo
    result: UndoResult

    @property
    def to_send(self) -> int:
        return self.result.run.counts[Status.PENDING]


def undo_plan(
    settings: Settings, info: RunInfo, *, config_file: Path | None, sandbox: bool
) -> UndoPlan:
    """The undo's dry run (`batcher undo REPORT --plan`) of the run itself, in the calling
    thread."""
    result = asyncio.run(
        undo(
            settings,
            run=info,
            sandbox=sandbox,
            config_file=config_file,
            dry_run=True,
        )
    )
    if result.run.stopped is not None:
        raise BatcherError(f"{result.run.stopped}; nothing was sent")
    return UndoPlan(info, result)


@dataclass
class RunRecord:
    """What the page keeps of a run it started (`state.dir/web/<id>/run.json`)."""

    id: str
    input_name: str
    input_path: str
    operation: str
    started: float
    finished: float | None = None
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    message: str = ""
    report_csv: str = ""
    report_xlsx: str = ""
    xlsx_note: str = ""
    upload_id: str = ""
    # The operation as chosen on the page (Operation's fields), to show it again.
    choices: dict[str, str] = field(default_factory=dict)
    # For an undo: the report of the run it takes back.
    undoes: str = ""
    # The report's name for the download, without its extension (`contacts-report`).
    download: str = ""


@dataclass(frozen=True)
class Hooks:
    """What a run's work reports to the page: progress, the preview, the stop, extra notes."""

    progress: Callable[[RunProgress], None]
    confirm: Callable[[Preview], bool]
    stop: Stop
    note: Callable[[str], None]


# A run's work, in the worker thread: the library call, with the page's hooks.
Work = Callable[[Hooks], RunResult]


@dataclass
class ActiveRun:
    """A run going on in its worker thread, and what the page shows of it."""

    record: RunRecord
    folder: Path
    stop: Stop = field(default_factory=Stop)
    requests_planned: int = 0
    requests_done: int = 0
    rows_to_send: int = 0
    sending_since: float | None = None
    thread: threading.Thread | None = None
    result: RunResult | None = None
    error: str = ""
    # How far the run has got, as the library last told it (its ETA heeds the rate limit).
    tick: RunProgress | None = None
    tick_at: float = 0.0
    # The XLSX copy of the report is being written (after the run ended: the CSV is offered).
    writing_xlsx: bool = False

    @property
    def done(self) -> bool:
        return self.record.finished is not None

    def snapshot(self) -> dict[str, Any]:
        """The progress numbers for the page (server-sent events and /progress)."""
        now = time.time()
        planned, done = self.requests_planned, self.requests_done
        fraction = done / planned if planned else (1.0 if self.done else 0.0)
        rows_done = round(self.rows_to_send * fraction)
        rate = 0.0
        eta: float | None = None
        if self.sending_since is not None:
            end = self.record.finished or now
            sending = max(end - self.sending_since, 1e-6)
            rate = rows_done / sending
            left = None if self.tick is None or self.done else self.tick.eta_s
            if left is not None:
                eta = max(left - (now - self.tick_at), 0.0)
        if self.done:
            state = "finished" if self.record.exit_code in (0, 1) else "stopped"
            if self.error:
                state = "error"
        else:
            state = "stopping" if self.stop.requested else "running"
            if self.stop.requested:
                eta = None  # the rest stays pending: the run ends as in-flight requests do
        return {
            "id": self.record.id,
            "state": state,
            "input": self.record.input_name,
            "operation": self.record.operation,
            "requests_done": done,
            "requests_planned": planned,
            "rows_to_send": self.rows_to_send,
            "rows_done": rows_done,
            "rows_per_s": round(rate, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round((self.record.finished or now) - self.record.started, 1),
            "counts": dict(self.record.counts),
            "message": self.record.message,
            "exit_code": self.record.exit_code,
            "xlsx": "writing" if self.writing_xlsx else "ready" if self.record.report_xlsx else "",
        }


class Runs:
    """The runs started from the page: at most one going at a time (the state lock says so
    for every other batcher process too), and the records of those that ended."""

    def __init__(self, settings: Settings, scrubber: Scrubber) -> None:
        self.settings = settings
        self.scrubber = scrubber
        self.root = Path(settings.state.dir) / "web"
        self.current: ActiveRun | None = None
        self._lock = threading.Lock()

    def busy(self) -> bool:
        return self.current is not None and not self.current.done

    def new_folder(self) -> tuple[str, Path]:
        own_subdir(self.root)
        run_id = secrets.token_hex(8)
        folder = self.root / run_id
        folder.mkdir(mode=0o700)
        return run_id, folder

    def start(
        self,
        make_job: Callable[[Path], Job],
        input_name: str,
        upload_id: str = "",
        choices: dict[str, str] | None = None,
        on_end: Callable[[ActiveRun], None] | None = None,
    ) -> ActiveRun:
        """Start the job in a worker thread; its report goes to the run's own folder.

        The job is built here (UsageError before anything starts); the state lock is taken by
        `execute` in the thread, and a StateLockedError there ends the run with its message.
        """
        stem = Path(input_name).name
        for suffix in (".gz", ".csv", ".tsv", ".txt", ".xlsx", ".xlsm"):
            stem = stem.removesuffix(suffix)

        built: list[Job] = []

        def begin(report: Path) -> tuple[Work, str]:
            job = make_job(report)
            built.append(job)

            def work(hooks: Hooks) -> RunResult:
                return asyncio.run(
                    execute(
                        self.settings,
                        job,
                        on_tick=hooks.progress,
                        confirm=hooks.confirm,
                        stop=hooks.stop,
                    )
                )

            return work, str(job.input_path.resolve())

        return self._start(
            begin,
            input_name,
            f"{_file_stem(stem)}-report.csv",
            download=f"{stem}-report",
            upload_id=upload_id,
            choices=choices,
            on_end=on_end,
            xlsx=lambda active, result: self._second_render(active, built[0], result),
        )

    def start_undo(
        self,
        info: RunInfo,
        *,
        config_file: Path | None,
        sandbox: bool,
        on_end: Callable[[ActiveRun], None] | None = None,
    ) -> ActiveRun:
        """Undo the run `info` from its own records (`batcher.app.undo.undo`), in a worker thread.

        The undo's report (CSV only: its input is generated and gone when it ends) goes to the
        run's own folder.
        """
        report = report_of(info)
        stem = report.name
        for suffix in (".csv", ".xlsx", ".xlsm", ".jsonl"):
            stem = stem.removesuffix(suffix)

        def begin(out: Path) -> tuple[Work, str]:
            def work(hooks: Hooks) -> RunResult:
                found = asyncio.run(
                    undo(
                        self.settings,
                        run=info,
                        report_path=out,
                        sandbox=sandbox,
                        config_file=config_file,
                        on_tick=hooks.progress,
                        confirm=hooks.confirm,
                        stop=hooks.stop,
                    )
                )
                source = found.source
                hooks.note(
                    f"undid {source.undone:,} of the run's {source.rows:,} rows "
                    f"({source.operations:,} operations); {source.nothing:,} with nothing to "
                    f"undo, {source.skipped:,} uncertain left alone (see the undo's report)"
                )
                return found.run

            return work, str(report)

        return self._start(
            begin,
            report.name,
            f"{_file_stem(stem)}-undo.csv",
            download=f"{stem}-undo",
            undoes=str(report),
            on_end=on_end,
            xlsx=None,
        )

    def _start(
        self,
        begin: Callable[[Path], tuple[Work, str]],
        input_name: str,
        report_name: str,
        *,
        download: str,
        upload_id: str = "",
        choices: dict[str, str] | None = None,
        undoes: str = "",
        on_end: Callable[[ActiveRun], None] | None,
        xlsx: Callable[[ActiveRun, RunResult], None] | None,
    ) -> ActiveRun:
        with self._lock:
            if self.busy():
                raise BatcherError(
                    f"{self.settings.state.dir}: a run started from this page is still going; "
                    "wait for it to finish or stop it"
                )
            run_id, folder = self.new_folder()
            report = folder / report_name
            try:
                work, input_path = begin(report)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            record = RunRecord(
                id=run_id,
                input_name=input_name,
                input_path=input_path,
                operation="",
                started=time.time(),
                report_csv=report.name,
                upload_id=upload_id,
                choices=dict(choices or {}),
                undoes=undoes,
                download=download,
            )
            active = ActiveRun(record, folder)
            self.current = active
            self._save(active)
            thread = threading.Thread(
                target=self._work,
                args=(active, work, report, xlsx, on_end),
                name=f"batcher-run-{run_id}",
            )
            active.thread = thread
            thread.start()
            return active

    def _work(
        self,
        active: ActiveRun,
        work: Work,
        report: Path,
        xlsx: Callable[[ActiveRun, RunResult], None] | None,
        on_end: Callable[[ActiveRun], None] | None,
    ) -> None:
        record = active.record
        notes: list[str] = []
        result: RunResult | None = None

        def progress(tick: RunProgress) -> None:
            active.requests_done, active.requests_planned = tick.requests_done, tick.requests_total
            active.tick, active.tick_at = tick, time.time()

        def confirm(preview: Preview) -> bool:
            # Not a question here (the user pressed Start after seeing the plan): the numbers
            # the run is about to send, for the progress display.
            active.rows_to_send = preview.rows
            active.requests_planned = preview.requests
            record.operation = preview.operation
            active.sending_since = time.time()
            # Saved now: a server killed mid-run still knows what this run is (for Resume).
            with contextlib.suppress(OSError):
                self._save(active)
            return True

        try:
            result = work(Hooks(progress, confirm, active.stop, notes.append))
            active.result = result
            record.operation = result.operation
            record.counts = {status.value: result.counts[status] for status in STATUS_ORDER}
            record.exit_code = result.exit_code
            record.message = "; ".join([self._summary(result), *notes])
            if not report.is_file():
                record.report_csv = ""
        except BatcherError as exc:
            active.error = record.message = self.scrubber.scrub(page_words(str(exc)))
            record.exit_code = exc.exit_code
            if not report.is_file():
                record.report_csv = ""
        except Exception as exc:  # one line on the page; the details in a crash file
            crash = write_crash_file(Path(self.settings.state.dir), exc, self.scrubber)
            where = f"details in {crash}" if crash is not None else "no crash file could be written"
            active.error = record.message = self.scrubber.scrub(
                f"internal error ({type(exc).__name__}: {exc}); {where}; what was saved is kept: "
                "press Resume in the runs list to go on, and please report this"
            )
            record.exit_code = 3
            record.report_csv = ""
        finally:
            # The CSV is complete: the run ends here, and its XLSX copy is written after, in a
            # thread of its own, so that the CSV is offered and new plans and runs go at once
            # (a 600,000-row copy took 2 min 47 s, all of it "running" before).
            later = xlsx is not None and result is not None and bool(record.report_csv)
            active.writing_xlsx = later
            record.finished = time.time()
            with contextlib.suppress(OSError):
                self._save(active)
            if on_end is not None:
                on_end(active)
        if later:
            assert xlsx is not None
            assert result is not None
            # A daemon: a server stopping does not wait for a copy (the CSV is the report).
            threading.Thread(
                target=self._copy,
                args=(active, xlsx, result),
                name=f"batcher-xlsx-{record.id}",
                daemon=True,
            ).start()

    def _copy(
        self, active: ActiveRun, xlsx: Callable[[ActiveRun, RunResult], None], result: RunResult
    ) -> None:
        """Write the XLSX copy of a run's report, then say so in its record."""
        try:
            xlsx(active, result)
        except Exception as exc:  # the CSV stands: one line of why there is no copy
            active.record.xlsx_note = self.scrubber.scrub(
                f"the XLSX copy could not be written ({type(exc).__name__}); the CSV is complete"
            )
        finally:
            active.writing_xlsx = False
            with contextlib.suppress(OSError):
                self._save(active)

    def _second_render(self, active: ActiveRun, job: Job, result: RunResult) -> None:
        assert job.report_path is not None
        target = job.report_path.with_suffix(".xlsx")
        try:
            export_report(self.settings, job, result, target)
            active.record.report_xlsx = target.name
        except BatcherError as exc:
            active.record.xlsx_note = self.scrubber.scrub(str(exc))
        except (OSError, ValueError, TypeError) as exc:
            active.record.xlsx_note = self.scrubber.scrub(
                f"the XLSX copy could not be written ({type(exc).__name__}); the CSV is complete"
            )

    def _summary(self, result: RunResult) -> str:
        """The run's end in the page's words, its advice said once."""
        stopped = result.stopped
        if stopped is not None:
            said = str(stopped)
            if stopped.advice:
                return self.scrubber.scrub(f"stopped: {page_words(said)}")
            return self.scrubber.scrub(
                f"stopped: {said}; the rest is pending: press Resume in the runs list to send it"
            )
        if result.counts[Status.FAILED]:
            return "some rows failed: press Resume in the runs list to retry them"
        if result.counts[Status.PENDING]:
            return "some rows are pending: press Resume in the runs list to send them"
        return f"finished in {result.seconds:.1f} s"

    def _save(self, active: ActiveRun) -> None:
        target = active.folder / "run.json"
        tmp = active.folder / "run.json.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with open(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(active.record), out)
        tmp.replace(target)

    def records(self) -> list[RunRecord]:
        """The runs started from the page, newest first (from their run.json)."""
        found = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if (record := _read_record(folder)) is not None:
                    found.append(record)
        current = self.current
        if current is not None:
            found = [r for r in found if r.id != current.record.id] + [current.record]
        found.sort(key=lambda r: r.started, reverse=True)
        return found

    def report_file(self, run_id: str, kind: str) -> tuple[int, str] | None:
        """The report of a page run, if there is one: a read-only descriptor (the caller closes
        it) and the name to download it under. `kind` is "csv" or "xlsx".

        Only a regular file of ours inside the run's own folder, with one link, opened without
        following a link (`batcher.support.files.open_own_file`), named as the page names reports: a
        planted `run.json` naming a link, another folder or someone else's file gets nothing.
        """
        if not _RUN_ID.match(run_id):
            return None
        folder = self.root / run_id
        record = _read_record(folder)
        if record is None:
            return None
        name = record.report_csv if kind == "csv" else record.report_xlsx
        if not name.endswith(f".{kind}") or name.startswith("."):
            return None
        try:
            fd = open_own_file(folder, name)
        except OSError:
            return None
        return fd, f"{record.download}.{kind}" if record.download else name

    def prune(self, keep_days: int, *, now: float | None = None) -> list[str]:
        """Delete the folders (reports, run.json) of page runs that ended, or started when they
        never ended, more than `keep_days` days ago, but the run going now; their ids."""
        horizon = (time.time() if now is None else now) - keep_days * 86_400
        current = self.current.record.id if self.current is not None else ""
        gone: list[str] = []
        if not self.root.is_dir():
            return gone
        for folder in self.root.iterdir():
            if folder.name == current or not _RUN_ID.match(folder.name):
                continue
            record = _read_record(folder)
            when = horizon  # kept when nothing tells its age
            if record is not None:
                when = record.finished or record.started
            else:
                with contextlib.suppress(OSError):
                    when = folder.lstat().st_mtime
            if when < horizon:
                if folder.is_symlink():
                    folder.unlink(missing_ok=True)
                else:
                    shutil.rmtree(folder, ignore_errors=True)
                gone.append(folder.name)
        return gone

    def stop_current(self, reason: str) -> bool:
        current = self.current
        if current is None or current.done:
            return False
        current.stop.request(reason)
        return True

    def join(self, timeout: float | None = None) -> None:
        current = self.current
        if current is not None and current.thread is not None:
            current.thread.join(timeout)


def _read_record(folder: Path) -> RunRecord | None:
    """The run.json of a page run's folder (never through a link), or None."""
    try:
        fd = open_own_file(folder, "run.json")
        with open(fd, encoding="utf-8") as data:
            return RunRecord(**json.load(data))
    except (OSError, ValueError, TypeError):
        return None


# The longest input stem a report's file name keeps, in UTF-8 bytes (NAME_MAX is 255 bytes).
_MAX_STEM_BYTES = 100


def _file_stem(stem: str) -> str:
    """`stem` for a file name of ours when it is plain (printable, no leading dot) and short,
    else "upload": the name shown and downloaded is kept in the run's record."""
    plain = stem.isprintable() and not stem.startswith(".") and "/" not in stem
    return stem if plain and stem and len(stem.encode()) <= _MAX_STEM_BYTES else "upload"
