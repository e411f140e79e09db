"""The report stage: a run's report rendered from its ledger and counted as it is written, by one
process or, for a large CSV or JSONL report on a machine with a core to spare, by two.

Why two: rendering is SQLite handing rows to Python and the csv module writing them, both holding
the GIL (a thread gains nothing), and with a million rows it took a third of a run's time while
the machine's other core idled. So a helper process (``python -m batcher.rendering``) writes the
report's first rows straight into the report's temporary file:

- it starts before the send (`Helper.start`) and *follows* it: each row whose line can no longer
  change (answered success or error, or invalid or duplicate before sending) is written as soon
  as every row before it is, while the run still sends (niced: sending comes first);
- when the send is over (`Helper.complete`) it says how far it got, the rows left are split
  between the two processes, this one writes its share into a file of its own, and appends it
  once the helper is done. The report is the very file one process writes, byte for byte; the
  helper's counts, reasons and examples are merged with this process's (`Tally`).

The helper reads the run's state file read-only (`Ledger.reader`) beside this process, which
holds the state lock; its job comes as JSON lines on stdin (the report's descriptor is inherited:
no path it could be tricked into opening) and its answers go to stdout. It runs in a session of
its own, so that a Ctrl-C at the terminal reaches batcher alone, which decides (SPEC "Stopping"),
and it ends by itself as soon as batcher is gone (checked every block of rows: a second Ctrl-C, a
kill); a killed batcher's temporary report is left as a killed writer leaves it. It never sees
the API token: its environment lacks the token's variable. If it cannot start, or fails at any
point, this process writes what the helper would have (from the header on): nothing is lost, it
is only slower, and `notify` says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from batcher.ledger import LAST_ROW, REPORT_BLOCK, Ledger
from batcher.models import Cell, Inert, Status
from batcher.report import (
    RESULT_FIELDS,
    ReportFile,
    RowSource,
    Summary,
    check_report_path,
    write_lines,
    write_rows,
)

__all__ = ["EXAMPLES", "NOT_SENT", "Example", "Helper", "Split", "Tally", "render"]

# The first rows of each kind that is never sent (invalid, duplicate) kept as examples for `plan`.
EXAMPLES = 5
NOT_SENT = (Status.INVALID, Status.DUPLICATE)
# How many distinct reasons of failed/error rows are counted (the summary shows the top ones).
_REASONS_TRACKED = 1000
_STATUS = RESULT_FIELDS.index("status")
_MESSAGE = RESULT_FIELDS.index("message")
_status_of = itemgetter(_STATUS)
_NOTED = frozenset({Status.FAILED.value, Status.ERROR.value})


@dataclass(frozen=True)
class Example:
    """One row that will not be sent, and why: for `plan`'s preflight."""

    row: int
    line: int
    contact_id: str
    message: str


@dataclass
class Tally:
    """What the summary tells of the report's rows, counted as the rows go by: rows by status,
    the reasons of failed and error rows, and the first rows never sent (examples)."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(
        default_factory=lambda: {status.value: [] for status in NOT_SENT}
    )

    def rows(self, rows: Iterable[tuple[Cell, ...]]) -> Iterator[tuple[Cell, ...]]:
        """`rows`, counted a block at a time and passed on with no Python code run per row (the
        csv writer takes them at C speed): only the rare blocks with a row to note are looked
        into row by row."""
        rows = iter(rows)
        blocks = iter(lambda: list(islice(rows, REPORT_BLOCK)), [])
        return chain.from_iterable(map(self._block, blocks))

    def _block(self, block: list[tuple[Cell, ...]]) -> list[tuple[Cell, ...]]:
        seen = Counter(map(_status_of, block))
        self.counts.update(seen)
        kept = self.examples
        noted = _NOTED | {status for status, found in kept.items() if len(found) < EXAMPLES}
        if noted.isdisjoint(seen):
            return block
        for cells in block:
            status = str(cells[_STATUS])
            if status in _NOTED:
                self._reason(status, str(cells[_MESSAGE]), 1)
            elif status in kept and len(kept[status]) < EXAMPLES:
                row, line, contact = cells[0], cells[1], cells[2]
                kept[status].append(
                    Example(int(row or 0), int(line or 0), str(contact or ""), str(cells[_MESSAGE]))
                )
        return block

    def _reason(self, status: str, message: str, rows: int) -> None:
        key = (status, message)
        if key in self.reasons or len(self.reasons) < _REASONS_TRACKED:
            self.reasons[key] += rows

    def extend(self, later: Tally) -> None:
        """Add the tally of the rows that come after these."""
        self.counts.update(later.counts)
        for (status, message), rows in later.reasons.items():
            self._reason(status, message, rows)
        for status, found in later.examples.items():
            kept = self.examples.setdefault(status, [])
            kept.extend(found[: max(EXAMPLES - len(kept), 0)])

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "reasons": [[status, message, n] for (status, message), n in self.reasons.items()],
            "examples": {s: [asdict(e) for e in found] for s, found in self.examples.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        return cls(
            Counter({str(status): int(n) for status, n in data["counts"].items()}),
            Counter({(str(s), str(m)): int(n) for s, m, n in data["reasons"]}),
            {s: [Example(**e) for e in found] for s, found in data["examples"].items()},
        )


# The share of the rows left at the end of the send that this process writes itself.
_OWN_SHARE = 0.5
# Below this many rows a helper's start (about a fifth of a second) costs more than it saves.
SPLIT_FROM_ROWS = 200_000
# Report statuses that no later answer in the run changes: a following helper writes such rows.
_FINAL = frozenset({"success", "error", "invalid", "duplicate"})
# A following helper looks for newly settled rows this often, reading at most this many row
# numbers at once (a few at the edge of what is settled, so that a slow, paced run costs it next
# to nothing; more each time it finds them all settled).
_POLL_S = 0.1
_SPAN_MIN = 64
_SPAN_MAX = 16_384
# The helper gives way to the send (and to the API emulator, when it runs here). Only so far:
# on the 2-core benchmark machine even an idle-class busy loop slowed the send by a sixth (the
# virtual cores share hardware), so following costs the send about half the CPU time it saves
# the report; and an idle-class helper could starve on a busy machine, with batcher waiting.
_NICE = 10


@dataclass(frozen=True)
class Split:
    """When and how a report is written by two processes.

    `hidden` names environment variables the helper must not see (the token's); `command`
    starts the helper (tests give one that fails).
    """

    from_rows: int = SPLIT_FROM_ROWS
    hidden: tuple[str, ...] = ()
    command: tuple[str, ...] = (sys.executable, "-m", "batcher.rendering")


def render(
    path: Path,
    ledger: Ledger,
    pending_message: str,
    by_location: Mapping[str, str],
    tally: Tally,
    *,
    summary: Summary | None = None,
    split: Split | None = None,
    helper: Helper | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> int:
    """Write the report of every row in `ledger` to `path`, counting its rows into `tally`;
    returns the number of rows. Rows never sent get `pending_message`, or their location's own
    in `by_location`. `helper` (see `Helper.start`; the caller closes it) writes the first rows;
    without one, `split` (None: never) lets a large report be written by two processes."""
    if helper is not None:  # the caller's, to close
        return helper.complete(ledger, pending_message, by_location, tally)
    started = None if split is None else Helper.start(path, ledger, split, notify)
    if started is None:
        source = _source(ledger, pending_message, by_location, tally, 0, LAST_ROW)
        return write_rows(path, ledger.columns, source, summary=summary)
    with started:
        return started.complete(ledger, pending_message, by_location, tally)


def _source(
    ledger: Ledger,
    pending_message: str,
    by_location: Mapping[str, str],
    tally: Tally,
    first: int,
    last: int,
) -> RowSource:
    """The report rows numbered `first` to `last`, counted into `tally`."""

    def rows(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
        cells = ledger.report_rows(pending_message, by_location, inert, first=first, last=last)
        return tally.rows(cells)

    return rows


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Helper:
    """The helper process of one report, and the report's temporary file that it writes into."""

    def __init__(
        self,
        report: ReportFile,
        process: subprocess.Popen[bytes],
        errors: IO[bytes],
        header_end: int,
        notify: Callable[[str], None],
    ) -> None:
        self._report = report
        self._process: subprocess.Popen[bytes] | None = process
        self._errors = errors
        self._header_end = header_end
        self._notify = notify

    @classmethod
    def start(
        cls, path: Path, ledger: Ledger, split: Split, notify: Callable[[str], None]
    ) -> Helper | None:
        """A helper writing the report of `ledger` to `path` as the run settles its rows; None
        when one process writes it (XLSX, a small report, one core, no Python to start)."""
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".jsonl") or not split.command[0] or _cores() < 2:
            return None
        if ledger.row_count() < max(split.from_rows, 2):
            return None
        columns = ledger.columns
        check_report_path(path, columns=len(columns))
        report = ReportFile(path)
        try:
            write_lines(report.file, suffix, columns, lambda inert: (), header=True)
            report.file.flush()
            header_end = report.file.tell()
            fd = report.file.fileno()
            process, errors = _spawn(split, fd)
            job = {"ledger": str(ledger.path), "format": suffix, "fd": fd, "parent": os.getpid()}
            helper = cls(report, process, errors, header_end, notify)
        except OSError as exc:
            report.__exit__(None, None, None)
            notify(f"report: cannot start a second writer ({exc}); this process writes it all")
            return None
        helper._send(job)
        return helper

    def complete(
        self,
        ledger: Ledger,
        pending_message: str,
        by_location: Mapping[str, str],
        tally: Tally,
    ) -> int:
        """The send is over: finish the report with the helper, publish it; returns its rows."""
        suffix = self._report.path.suffix.lower()
        columns = ledger.columns
        own, head = Tally(), Tally()
        middle, own_rows = LAST_ROW + 1, 0
        answer = None
        with tempfile.TemporaryFile(dir=self._report.path.parent) as part:
            at = self._ask({"message": pending_message, "pending": dict(by_location)}, "at")
            if at is not None:
                middle = _middle(ledger, int(at["at"]))
                self._send({"last": middle - 1})
                if middle <= LAST_ROW:
                    source = _source(ledger, pending_message, by_location, own, middle, LAST_ROW)
                    own_rows = write_lines(part, suffix, columns, source, header=False)
                answer = self._ask(None, "rows")
            out = self._report.file
            if answer is None:  # the helper failed: its rows are written here, from the header on
                self._stop()
                out.seek(self._header_end)
                out.truncate()
                source = _source(ledger, pending_message, by_location, head, 0, middle - 1)
                head_rows = write_lines(out, suffix, columns, source, header=False)
            else:
                head = Tally.from_json(answer["tally"])
                head_rows = int(answer["rows"])
            out.seek(0, os.SEEK_END)
            part.seek(0)
            shutil.copyfileobj(part, out, 1 << 20)
        head.extend(own)
        tally.counts, tally.reasons, tally.examples = head.counts, head.reasons, head.examples
        self._report.publish()
        return head_rows + own_rows

    def _send(self, message: Mapping[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
        except OSError:
            pass  # it is gone: its answer says so

    def _ask(self, message: Mapping[str, Any] | None, key: str) -> dict[str, Any] | None:
        """Send `message` (if any), then read the helper's answer line, which must hold `key`;
        None if the helper failed."""
        if message is not None:
            self._send(message)
        process = self._process
        if process is None or process.stdout is None:
            return None
        line = process.stdout.readline()
        try:
            answer: dict[str, Any] = json.loads(line)
            if key not in answer:
                raise ValueError(f"no {key!r} in its answer")
            return answer
        except (ValueError, TypeError):
            self._stop()
            self._errors.seek(0)
            why = self._errors.read().decode(errors="replace").strip().splitlines()[-1:]
            self._notify(
                f"report: the second writer failed ({why[0] if why else 'no answer'}); "
                "this process writes the rest"
            )
            return None

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the helper (if still there) and remove the report unless it was published."""
        try:
            self._stop()
        finally:
            self._errors.close()
            self._report.__exit__(None, None, None)


def _spawn(split: Split, fd: int) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    hidden = set(split.hidden)
    env = {name: value for name, value in os.environ.items() if name not in hidden}
    # This very batcher, wherever it was imported from.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")))
    )
    # A file, not a pipe: no pipe to fill and block on. Closed by the Helper.
    errors = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        process = subprocess.Popen(
            split.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            pass_fds=(fd,),
            start_new_session=True,
            env=env,
        )
    except BaseException:
        errors.close()
        raise
    return process, errors


def _middle(ledger: Ledger, at: int) -> int:
    """The first row this process writes, of those from `at` on (past the last: none)."""
    left = ledger.rows_from(at)
    found = ledger.row_at(ledger.row_count() - left + int(left * (1 - _OWN_SHARE)))
    return LAST_ROW + 1 if found is None else found


# -- the helper process ------------------------------------------------------------------------


class _Lines:
    """JSON lines from the parent on stdin, read without Python's buffering, so that `ready`
    (select) sees every line not yet taken."""

    def __init__(self) -> None:
        self._buffer = b""

    def ready(self, timeout: float) -> bool:
        if b"\n" in self._buffer:
            return True
        return bool(select.select([0], [], [], timeout)[0])

    def take(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            block = os.read(0, 1 << 16)
            if not block:
                raise SystemExit(1)  # batcher closed our stdin: it is gone
            self._buffer += block
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message


def _follow(
    ledger: Ledger,
    suffix: str,
    out: IO[bytes],
    tally: Tally,
    lines: _Lines,
    check_parent: Callable[[], None],
) -> tuple[int, int]:
    """Write the report's rows while they settle, until batcher says the send is over; returns
    the first row not written and how many were."""
    columns = ledger.columns
    cursor, written, span = 0, 0, _SPAN_MIN
    last = ledger.row_at(ledger.row_count() - 1)
    while last is not None and cursor <= last:
        fetched: list[list[tuple[Cell, ...]]] = []
        settled = _settled(ledger, tally, cursor, cursor + span - 1, fetched)
        written += write_lines(out, suffix, columns, settled, header=False)
        out.flush()
        check_parent()
        rows = fetched[0]
        done = _final_prefix(rows)
        if done < len(rows):  # at the edge of what is settled: wait a little
            cursor, span = int(str(rows[done][0])), _SPAN_MIN
            if lines.ready(_POLL_S):
                break
        else:
            cursor, span = cursor + span, min(span * 2, _SPAN_MAX)
            if lines.ready(0):
                break
    return cursor, written


def _settled(
    ledger: Ledger, tally: Tally, first: int, last: int, fetched: list[list[tuple[Cell, ...]]]
) -> RowSource:
    """The rows numbered `first` to `last` that have their final line, up to the first that has
    not, counted into `tally`; the rows read are added to `fetched`."""

    def rows(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
        found = list(ledger.report_rows("", {}, inert, first=first, last=last))
        fetched.append(found)
        return tally.rows(found[: _final_prefix(found)])

    return rows


def _final_prefix(rows: Sequence[tuple[Cell, ...]]) -> int:
    """How many of `rows`, from the first, have their final line."""
    statuses = list(map(_status_of, rows))
    if _FINAL.issuperset(statuses):
        return len(statuses)
    return next(i for i, status in enumerate(statuses) if status not in _FINAL)


def _help(job: Mapping[str, Any], lines: _Lines) -> None:
    """The helper's work: follow the send, then write the rows up to where batcher says."""
    parent = int(job["parent"])

    def check_parent() -> None:
        if os.getppid() != parent:  # batcher is gone: its report will not be published
            os._exit(1)

    check_parent()
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    tally = Tally()
    suffix = str(job["format"])
    with Ledger.reader(Path(job["ledger"])) as ledger, open(job["fd"], "wb") as out:
        cursor, written = _follow(ledger, suffix, out, tally, lines, check_parent)
        end = lines.take()
        _answer({"at": cursor})
        last = int(lines.take()["last"])
        source = _source(ledger, end["message"], end["pending"], tally, cursor, last)
        written += write_lines(out, suffix, ledger.columns, source, header=False)
        out.flush()
    _answer({"rows": written, "tally": tally.to_json()})


def _answer(message: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    del argv
    lines = _Lines()
    _help(lines.take(), lines)


if __name__ == "__main__":
    main()
