"""The report stage: a run's report rendered from its ledger and counted as it is written, by one
process or, for a large report on a machine with a core to spare, by two.

Why two: rendering is SQLite handing rows to Python and the csv module writing them, both holding
the GIL (a thread gains nothing), and with a million rows it took a third of a run's time while
the machine's other core idled (5.5 s; 3.1 s with the helper). So a helper process (``python -m
batcher.app.rendering``) renders the rows from the middle one on into a part file while this process
renders the first half; the part's bytes are then appended, and the report is the very file one
process writes, byte for byte (an XLSX report: the same sheet XML; the part holds its rows
deflated, and is inflated into the sheet). The helper's counts, reasons and examples are merged
into this process's `Tally`.

The helper:
- reads the run's state file read-only (`Ledger.reader`) beside this process, which holds the
  state lock and writes nothing while the report is written;
- gets its job as JSON on stdin, writes into a file this process created (an inherited
  descriptor: no path it could be tricked into opening) and answers its tally as JSON on stdout;
- runs in a session of its own, so that a Ctrl-C at the terminal reaches batcher alone, which
  decides (SPEC "Stopping"), and ends by itself, removing its part, as soon as batcher is gone
  (checked every block of rows: a second Ctrl-C, a kill);
- never sees the API token: its environment lacks the token's variable.
If it cannot start, or fails, this process renders the rest itself: nothing is lost, it is only
slower (and `notify` says why).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import chain, islice
from operator import countOf, itemgetter
from pathlib import Path
from typing import IO, Any

from batcher.app.result import Example
from batcher.domain.fields import CONTACT_ID, LINE, MESSAGE, ROW, STATUS, UNCERTAIN
from batcher.domain.models import Cell, Inert, Status
from batcher.reports.formats import (
    RowSource,
    Summary,
    copy_part,
    create_beside,
    write_part,
    write_rows,
)
from batcher.state import LAST_ROW, REPORT_BLOCK, Ledger
from batcher.support.collecting import fewer_collections
from batcher.support.files import unfinished
from batcher.support.machine import cores

__all__ = ["EXAMPLES", "NOT_SENT", "Split", "Tally", "render"]

# The first rows of each kind that is never sent (invalid, duplicate) kept as examples for `plan`.
EXAMPLES = 5
NOT_SENT = (Status.INVALID, Status.DUPLICATE, Status.NOT_FOUND, Status.AMBIGUOUS)
# How many distinct reasons of failed/error rows are counted (the summary shows the top ones).
_REASONS_TRACKED = 1000
_status_of = itemgetter(STATUS)
_uncertain_of = itemgetter(UNCERTAIN)
_NOTED = frozenset({Status.FAILED.value, Status.ERROR.value})


@dataclass
class Tally:
    """What the summary tells of the report's rows, counted as the rows go by: rows by status,
    the uncertain rows, the reasons of failed and error rows, and the first rows never sent
    (examples)."""

    counts: Counter[str] = field(default_factory=Counter)
    uncertain: int = 0
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(
        default_factory=lambda: {status.value: [] for status in NOT_SENT}
    )

    def rows(
        self, rows: Iterable[tuple[Cell, ...]], each_block: Callable[[], None] | None = None
    ) -> Iterator[tuple[Cell, ...]]:
        """`rows`, counted a block at a time and passed on with no Python code run per row (the
        csv writer takes them at C speed): only the rare blocks with a row to note are looked
        into row by row. `each_block` is called before each block."""
        rows = iter(rows)
        blocks = iter(lambda: list(islice(rows, REPORT_BLOCK)), [])
        if each_block is not None:
            blocks = map(_after(each_block), blocks)
        return chain.from_iterable(map(self._block, blocks))

    def _block(self, block: list[tuple[Cell, ...]]) -> list[tuple[Cell, ...]]:
        seen = Counter(map(_status_of, block))
        self.counts.update(seen)
        self.uncertain += countOf(map(_uncertain_of, block), "true")
        kept = self.examples
        noted = _NOTED | {status for status, found in kept.items() if len(found) < EXAMPLES}
        if noted.isdisjoint(seen):
            return block
        for cells in block:
            status = str(cells[STATUS])
            if status in _NOTED:
                self._reason(status, str(cells[MESSAGE]), 1)
            elif status in kept and len(kept[status]) < EXAMPLES:
                row, line, contact = cells[ROW], cells[LINE], cells[CONTACT_ID]
                kept[status].append(
                    Example(int(row or 0), int(line or 0), str(contact or ""), str(cells[MESSAGE]))
                )
        return block

    def _reason(self, status: str, message: str, rows: int) -> None:
        key = (status, message)
        if key in self.reasons or len(self.reasons) < _REASONS_TRACKED:
            self.reasons[key] += rows

    def extend(self, later: Tally) -> None:
        """Add the tally of the rows that come after these."""
        self.counts.update(later.counts)
        self.uncertain += later.uncertain
        for (status, message), rows in later.reasons.items():
            self._reason(status, message, rows)
        for status, found in later.examples.items():
            kept = self.examples.setdefault(status, [])
            kept.extend(found[: max(EXAMPLES - len(kept), 0)])

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "uncertain": self.uncertain,
            "reasons": [[status, message, n] for (status, message), n in self.reasons.items()],
            "examples": {s: [asdict(e) for e in found] for s, found in self.examples.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        return cls(
            Counter({str(status): int(n) for status, n in data["counts"].items()}),
            int(data["uncertain"]),
            Counter({(str(s), str(m)): int(n) for s, m, n in data["reasons"]}),
            {s: [Example(**e) for e in found] for s, found in data["examples"].items()},
        )


def _after(call: Callable[[], None]) -> Callable[[list[tuple[Cell, ...]]], list[tuple[Cell, ...]]]:
    def block(rows: list[tuple[Cell, ...]]) -> list[tuple[Cell, ...]]:
        call()
        return rows

    return block


# The rows this process renders itself: half. The helper starts later but finishes first all the
# same (measured on 1M rows: at 0.52 and at 0.50 this process never waited for it, and the stage
# took 3.3 s against 3.2 s). An XLSX report's helper part goes in as it is (a CSV's is copied
# after), so this process is done sooner: it renders a little more (1M rows, 6 columns, old
# tags: at 0.50 it waited 0.14-0.44 s for the helper, which took 0.3-0.7 s more CPU; at 0.54 the
# helper took 0.7 s less).
_OWN_SHARE = 0.50
_OWN_SHARE_XLSX = 0.52
# Below this many rows a helper's start (about a fifth of a second) costs more than it saves.
SPLIT_FROM_ROWS = 200_000


@dataclass(frozen=True)
class Split:
    """When and how the report is rendered by two processes.

    `hidden` names environment variables the helper must not see (the token's); `command`
    starts the helper (tests give one that fails).
    """

    from_rows: int = SPLIT_FROM_ROWS
    hidden: tuple[str, ...] = ()
    command: tuple[str, ...] = (sys.executable, "-m", "batcher.app.rendering")


def render(
    path: Path,
    ledger: Ledger,
    pending_message: str,
    by_location: Mapping[str, str],
    tally: Tally,
    *,
    summary: Summary | None = None,
    split: Split | None = None,
    notify: Callable[[str], None] = lambda message: None,
) -> int:
    """Write the report of every row in `ledger` to `path`, counting its rows into `tally`;
    returns the number of rows. Rows never sent get `pending_message`, or their location's own
    in `by_location`. `split` (None: never) lets a large report be written by two processes."""
    columns = ledger.columns

    def rows(first: int, last: int) -> RowSource:
        def source(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
            cells = ledger.report_rows(pending_message, by_location, inert, first=first, last=last)
            return tally.rows(cells)

        return source

    middle = _middle(path, ledger, split)
    if split is None or middle is None:
        return write_rows(path, columns, rows(0, LAST_ROW), summary=summary)
    fd, part = create_beside(path)
    file = open(fd, "w+b")  # noqa: SIM115 (closed below, after the helper is done with it)
    suffix = path.suffix.lower()
    job = {
        "ledger": str(ledger.path),
        "format": suffix,
        "first": middle,
        "message": pending_message,
        "pending": dict(by_location),
        "fd": fd,
        "part": str(part),
        "parent": os.getpid(),
    }
    try:
        with unfinished(part), _Helper(split, job, fd, notify) as helper:

            def rest(out: IO[bytes]) -> int:
                answer = helper.answer()
                if answer is None:
                    return write_part(out, suffix, columns, rows(middle, LAST_ROW))
                tally.extend(Tally.from_json(answer["tally"]))
                file.seek(0)
                copy_part(file, out, suffix)
                return int(answer["rows"])

            return write_rows(path, columns, rows(0, middle - 1), summary=summary, rest=rest)
    finally:
        file.close()
        part.unlink(missing_ok=True)


def _middle(path: Path, ledger: Ledger, split: Split | None) -> int | None:
    """The row from which the helper renders, or None: one process."""
    if split is None or not split.command[0]:
        return None
    if cores() < 2:
        return None
    count = ledger.row_count()
    if count < max(split.from_rows, 2):
        return None
    share = _OWN_SHARE_XLSX if path.suffix.lower() == ".xlsx" else _OWN_SHARE
    return ledger.row_at(int(count * share))


class _Helper:
    """The helper process; `answer()` waits for its tally (None if it failed)."""

    def __init__(
        self, split: Split, job: Mapping[str, Any], fd: int, notify: Callable[[str], None]
    ) -> None:
        self._notify = notify
        self._process: subprocess.Popen[bytes] | None = None
        hidden = set(split.hidden)
        env = {name: value for name, value in os.environ.items() if name not in hidden}
        # This very batcher, wherever it was imported from.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, (str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")))
        )
        try:
            self._process = subprocess.Popen(
                split.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(fd,),
                start_new_session=True,
                env=env,
            )
            assert self._process.stdin is not None
            # One line, read at once: the rest of stdin stays open until `answer`.
            self._process.stdin.write(json.dumps(job).encode() + b"\n")
            self._process.stdin.flush()
        except (OSError, ValueError) as exc:  # ValueError: no pass_fds (not POSIX)
            self.__exit__()
            notify(f"report: cannot start a second writer ({exc}); this process writes it all")

    def answer(self) -> dict[str, Any] | None:
        process, self._process = self._process, None
        if process is None:
            return None
        out, err = process.communicate()
        try:
            if process.returncode != 0:
                raise ValueError(f"exit status {process.returncode}")
            answer: dict[str, Any] = json.loads(out)
            return answer
        except ValueError as exc:
            why = err.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
            self._notify(
                f"report: the second writer failed ({why[0]}); this process writes the rest"
            )
            return None

    def __enter__(self) -> _Helper:
        return self

    def __exit__(self, *exc: object) -> None:
        # Not waited for (an error in this process's half): stop it.
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            process.communicate()


def _part(job: Mapping[str, Any]) -> dict[str, Any]:
    """The helper's work: the rows from `job["first"]` on, written into `job["fd"]`."""
    parent = int(job["parent"])

    def check_parent() -> None:
        if os.getppid() != parent:  # batcher is gone: its report will not be written
            with contextlib.suppress(OSError):
                os.unlink(job["part"])
            os._exit(1)

    check_parent()
    tally = Tally()
    with Ledger.reader(Path(job["ledger"])) as ledger, open(job["fd"], "wb") as out:

        def source(inert: Inert | None) -> Iterator[tuple[Cell, ...]]:
            cells = ledger.report_rows(job["message"], job["pending"], inert, first=job["first"])
            return tally.rows(cells, check_parent)

        rows = write_part(out, job["format"], ledger.columns, source, packed=True)
    return {"rows": rows, "tally": tally.to_json()}


def main() -> None:
    """`python -m batcher.app.rendering`: one helper's work, its job read from stdin."""
    with fewer_collections():
        json.dump(_part(json.loads(sys.stdin.readline())), sys.stdout)


if __name__ == "__main__":
    main()
