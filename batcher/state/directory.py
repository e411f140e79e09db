"""The state directory: its lock, the runs' files, and what it knows of each run, read-only.

Layout of `state.dir`:
    lock                          held (flock) by the one batcher process using the directory
    run-<key>.sqlite              the run of one input content + operation, finished or not
    run-<key>.<created>.sqlite    an earlier finished run of the same key, kept for the record

`run_file` is the one place a run's file is named (the key is `batcher.app.identity`'s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batcher.domain.errors import StateLockedError, UsageError
from batcher.state import schema
from batcher.state.db import connect, read_only, reason, state_error
from batcher.state.schema import ReportRecord, Schema, reports
from batcher.support.files import check_trusted, open_private, private_dir

__all__ = [
    "RunInfo",
    "StateLock",
    "Undone",
    "moved_report",
    "peek",
    "prepare_state_dir",
    "prune_finished",
    "remove",
    "run_file",
    "runs_in",
    "set_aside",
]


def run_file(state_dir: Path, run_key: str) -> Path:
    """Where the run of `run_key` keeps its state (finished or not)."""
    return state_dir / f"run-{run_key}.sqlite"


class StateLock:
    """An exclusive flock on `state.dir/lock`, released when the process ends, however it ends.

    The lock file is opened owner-only and never through a symlink (a planted link would make
    us write our pid into its target).
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            private_dir(self.path.parent)
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise UsageError(
                f"{self.path}: cannot use the state directory's lock ({reason(exc)}); "
                "set state.dir to a folder of your own"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "another process"
            os.close(fd)
            raise StateLockedError(
                f"{self.path.parent}: another batcher run (pid {holder}) is using this state "
                "directory; wait for it to finish or set another state.dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
        except OSError as exc:
            os.close(fd)
            raise state_error(self.path, exc, "cannot write the lock", scratch=False) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def prepare_state_dir(state_dir: Path, warn: Callable[[str], None]) -> None:
    """Create the state directory owner-only, or check that an existing one is the user's own."""
    try:
        private_dir(state_dir)
    except OSError as exc:
        raise UsageError(
            f"{state_dir}: cannot create the state directory ({reason(exc)}); "
            "set state.dir to a writable folder"
        ) from None
    check_trusted(state_dir, "state directory", warn)


def peek(path: Path) -> tuple[str, str, str]:
    """The run's state, creation time and id; DatabaseError when the file is not a run's
    state."""
    if path.stat().st_size == 0:
        return "loading", "unknown", ""  # killed as it started: nothing of it was sent
    db = read_only(path)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            return "loading", "unknown", ""  # killed before its schema was written
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()
    return meta.get("state", "loading"), meta.get("created", "unknown"), meta.get("run_id", "")


def remove(path: Path) -> None:
    """Delete a run's state file and its -wal and -shm files."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def set_aside(path: Path, label: str) -> Path:
    """Rename a state file (and its -wal/-shm) to `run-<key>.<label>[-n].sqlite`; return it."""
    stem = path.name.removesuffix(".sqlite")
    base, n, target = label, 1, path.with_name(f"{stem}.{label}.sqlite")
    # Runs set aside in the same second must not overwrite each other's record.
    while target.exists():
        target, n = path.with_name(f"{stem}.{base}-{n}.sqlite"), n + 1
    for suffix in ("-wal", "-shm", ""):  # the database last: a crash leaves it findable
        old = Path(f"{path}{suffix}")
        if old.exists():
            old.rename(Path(f"{target}{suffix}"))
    return target


@dataclass(frozen=True, slots=True)
class Undone:
    """The finished undo of a run: when it finished, its report and its run id."""

    finished: str
    report: str
    run_id: str

    @property
    def by(self) -> str:
        """The undo in words: its report, or its run id when it wrote none (a Python caller's)."""
        if self.report:
            return f"the undo whose report is {self.report}"
        return f"undo run {self.run_id} (which wrote no report file)"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the state directory knows of one run, without opening it for writing.

    `report` is the run's latest complete report (no row pending), or its latest report when
    none is complete: the one `batcher status` and the page name; `latest_report` is the last
    one written, complete or not. `reports` lists every invocation's report (empty for a run of
    a version that did not keep them: `keeps_reports` False). `undoes` is, for an undo, the id
    of the run it takes back; `undone` says when and by which undo this run was taken back.
    """

    path: Path
    state: str  # loading, ready or finished
    created: str
    input: str
    operation: str
    target: str
    counts: dict[str, int]  # rows by status when the run last stopped (see `live_counts`)
    report: str = ""
    run_id: str = ""
    reports: tuple[ReportRecord, ...] = ()
    keeps_reports: bool = False
    finished: str = ""  # when it finished (UTC), if it did
    undoes: str = ""
    undone: Undone | None = None
    input_name: str = ""  # the input's name as its person knows it (a page upload's own name)
    window: str = ""  # the send window its latest invocation ran in (Step 14), if any

    @property
    def shown_input(self) -> str:
        """The input as `batcher status` names it: its own name beside the stored file's path
        when the two differ (a page upload)."""
        if self.input_name and self.input_name != Path(self.input).name:
            return f"{self.input_name} (uploaded, kept as {self.input})"
        return self.input

    @property
    def latest_report(self) -> str:
        return self.reports[-1].path if self.reports else self.report

    @property
    def undo_key(self) -> str:
        """What an undo of this run keeps as `undoes`: its id (a run of a version that kept
        none: its state file's name)."""
        return self.run_id or self.path.name


def moved_report(info: RunInfo, old: Path, new: Path) -> bool:
    """Tell `info`'s run that its report at `old` is now at `new` (so that `status` and the
    page name it where it is); the caller holds the state directory's lock. False when its
    state file cannot be written (the report is where it is either way)."""
    try:
        db = connect(info.path, create=False)
        try:
            schema.move_report(db, str(old.resolve()), str(new.resolve()))
        finally:
            db.close()
    except (sqlite3.Error, OSError):
        return False
    return True


def runs_in(state_dir: Path) -> list[RunInfo]:
    """Every run whose state is in `state_dir`, oldest first; unreadable files are skipped.
    A run taken back by a finished undo in the same directory says so (`RunInfo.undone`).

    Read-only: works while another process holds the directory's lock.
    """
    infos = []
    for path in sorted(state_dir.glob("run-*.sqlite")):
        try:
            db = read_only(path)
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                keeps = Schema.of(db).reports
                kept = tuple(reports(db)) if keeps else ()
            finally:
                db.close()
        except sqlite3.Error:
            continue
        counts = json.loads(meta.get("counts", "{}"))
        infos.append(
            RunInfo(
                path=path,
                state=meta.get("state", "loading"),
                created=meta.get("created", ""),
                input=meta.get("input", ""),
                operation=meta.get("operation", ""),
                target=meta.get("target", ""),
                counts={str(k): int(v) for k, v in counts.items()},
                report=meta.get("report", ""),
                run_id=meta.get("run_id", ""),
                reports=kept,
                keeps_reports=keeps,
                finished=meta.get("finished", ""),
                undoes=meta.get("undoes", ""),
                input_name=meta.get("input_name", ""),
                window=meta.get("window", ""),
            )
        )
    infos.sort(key=lambda info: info.created)
    undone = {
        info.undoes: Undone(info.finished or info.created, info.report, info.run_id)
        for info in infos  # oldest first: the latest undo of a run is the one kept
        if info.undoes and info.state == "finished"
    }
    return [
        dataclasses.replace(info, undone=undone[info.undo_key]) if info.undo_key in undone else info
        for info in infos
    ]


def prune_finished(state_dir: Path, keep_days: int, *, now: float | None = None) -> list[Path]:
    """Delete finished runs' state files last written more than `keep_days` days ago."""
    horizon = (time.time() if now is None else now) - keep_days * 86_400
    removed = []
    for info in runs_in(state_dir):
        if info.state != "finished":
            continue
        try:
            if info.path.stat().st_mtime >= horizon:
                continue
        except OSError:
            continue
        remove(info.path)
        removed.append(info.path)
    return removed
