"""The report written by two processes (batcher.app.rendering): the same bytes and the same
counts as one process writes, whatever goes wrong with the helper."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl  # test-only: reads the XLSX back independently of the writer
import pytest
from test_ledger import COLUMNS, KEY, LOST, NOT_FOUND, OK, _record, _row, _tags, load

from batcher.app import rendering
from batcher.app.rendering import EXAMPLES, Example, Split, Tally, render
from batcher.domain.models import ContactOutcome, Status
from batcher.state import Ledger

PENDING = "not sent: test stopped"
# Splits any report of two rows or more.
ALWAYS = Split(from_rows=2)


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper only starts with a core to spare: as on any machine of two or more."""
    monkeypatch.setattr(rendering, "cores", lambda: 2)


def _awkward(n: int) -> str:
    """Cells the CSV writer must quote or guard, among plain ones."""
    return ("=1+1", 'say "hi", then', "two\nlines", "\u00a0@sum", "plain", "ünï")[n % 6]


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[Ledger]:
    """A run of every kind of row: invalid, duplicate, success, error, failed, pending, a row of
    several requests (over 50 tags), and cells that need quoting or guarding; row numbers with
    gaps, as a shard's."""
    rows = []
    for n in range(1, 120, 3):
        row = _row(n, invalid="contact id is empty") if n % 23 == 0 else _row(n)
        if n % 17 == 0:
            row = _row(n, contact=n - 3)  # a duplicate of the row before
        if n == 40:
            row = _row(n, tags=_tags(60))
        rows.append(dataclasses.replace(row, extra=(_awkward(n), row.extra[1])))
    ledger = Ledger.open(tmp_path / ".batcher", KEY)
    load(ledger, COLUMNS, [rows[:20], rows[20:]])
    sent = [row.row for row in rows if row.status is None and row.row % 17 and row.row != 40]
    _record(ledger, sent[:10], OK)
    _record(ledger, sent[10:14], NOT_FOUND)
    _record(ledger, sent[14:20], LOST, http_status=503, attempts=6)
    _record(ledger, sent[20:25], ContactOutcome(Status.ERROR, "=cmd|' /C calc'!A0"))
    _record(ledger, [40], OK, part=0)
    _record(ledger, [40], OK, part=1)
    with ledger:
        yield ledger


def _render(
    ledger: Ledger, path: Path, split: Split | None, notices: list[str] | None = None
) -> Tally:
    tally = Tally()
    by_location = {"LOC1": "not sent: the daily quota of LOC1 is used up"}
    notify = notices.append if notices is not None else lambda text: None
    count = render(path, ledger, PENDING, by_location, tally, split=split, notify=notify)
    assert count == ledger.row_count()
    return tally


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_two_processes_write_the_same_report_and_counts_as_one(
    filled: Ledger, tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = _render(filled, tmp_path / f"one{suffix}", None)
    answers: list[dict[str, Any] | None] = []
    answer = rendering._Helper.answer

    def spy(helper: rendering._Helper) -> dict[str, Any] | None:
        answers.append(answer(helper))
        return answers[-1]

    monkeypatch.setattr(rendering._Helper, "answer", spy)
    notices: list[str] = []
    two = _render(filled, tmp_path / f"two{suffix}", ALWAYS, notices)
    assert notices == []
    assert len(answers) == 1  # the helper wrote the second half
    assert answers[0] is not None
    assert answers[0]["rows"] == filled.row_count() - filled.row_count() * 52 // 100
    assert (tmp_path / f"two{suffix}").read_bytes() == (tmp_path / f"one{suffix}").read_bytes()
    assert two == one
    assert set(one.counts) == {"success", "error", "failed", "invalid", "duplicate", "pending"}
    assert sorted(os.listdir(tmp_path)) == sorted(  # no part file left behind
        ["one" + suffix, "two" + suffix, ".batcher"]
    )


def _sheet(path: Path) -> bytes:
    with zipfile.ZipFile(path) as book:
        return book.read("xl/worksheets/sheet1.xml")


@pytest.mark.parametrize("helper", ["works", "fails"])
def test_two_processes_write_the_same_xlsx_sheet_and_counts_as_one(
    filled: Ledger, tmp_path: Path, helper: str
) -> None:
    """An XLSX report split between two processes (the helper's rows deflated into its part,
    appended to the sheet as they are) has the very sheet XML one process writes, its CRCs
    right, and reads back the same; so does one whose helper failed, its rows written by this
    process."""
    one = _render(filled, tmp_path / "one.xlsx", None)
    failing = (sys.executable, "-c", "import sys; sys.exit('helper broke')")
    split = ALWAYS if helper == "works" else Split(from_rows=2, command=failing)
    notices: list[str] = []
    two = _render(filled, tmp_path / "two.xlsx", split, notices)
    assert notices == ([] if helper == "works" else [
        "report: the second writer failed (helper broke); this process writes the rest"
    ])  # fmt: skip
    assert _sheet(tmp_path / "two.xlsx") == _sheet(tmp_path / "one.xlsx")
    for name in ("one.xlsx", "two.xlsx"):
        with zipfile.ZipFile(tmp_path / name) as book:
            assert book.testzip() is None  # every member's CRC right
    assert two == one
    read = [
        list(openpyxl.load_workbook(tmp_path / name)["report"].iter_rows(values_only=True))
        for name in ("one.xlsx", "two.xlsx")
    ]
    assert read[1] == read[0]
    assert len(read[0]) == filled.row_count() + 1
    assert sorted(os.listdir(tmp_path)) == [".batcher", "one.xlsx", "two.xlsx"]


def test_a_helper_that_fails_leaves_the_rest_to_this_process(
    filled: Ledger, tmp_path: Path
) -> None:
    one = _render(filled, tmp_path / "one.csv", None)
    failing = (sys.executable, "-c", "import sys; sys.exit('helper broke')")
    notices: list[str] = []
    two = _render(filled, tmp_path / "two.csv", Split(from_rows=2, command=failing), notices)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert two == one
    assert notices == [
        "report: the second writer failed (helper broke); this process writes the rest"
    ]


def test_a_helper_that_cannot_start_leaves_it_all_to_this_process(
    filled: Ledger, tmp_path: Path
) -> None:
    one = _render(filled, tmp_path / "one.csv", None)
    notices: list[str] = []
    split = Split(from_rows=2, command=(str(tmp_path / "no-such-python"),))
    two = _render(filled, tmp_path / "two.csv", split, notices)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert two == one
    assert len(notices) == 1
    assert notices[0].startswith("report: cannot start a second writer")


def test_the_helper_never_sees_the_token(
    filled: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TOKEN", "secret-value")
    spy = (
        sys.executable,
        "-c",
        "import os, sys; sys.exit(f\"token {os.environ.get('MY_TOKEN')!r}\")",
    )
    notices: list[str] = []
    _render(filled, tmp_path / "r.csv", Split(2, ("MY_TOKEN",), spy), notices)
    assert notices == [
        "report: the second writer failed (token None); this process writes the rest"
    ]


@pytest.mark.parametrize(
    ("name", "split"), [("r.xlsx", Split(from_rows=41)), ("r.csv", Split(from_rows=41))]
)
def test_small_reports_are_written_by_one_process(
    filled: Ledger, tmp_path: Path, name: str, split: Split
) -> None:
    """No helper starts (its command would fail, and say so): a helper's start costs more than
    it saves on a small report (40 rows here)."""
    broken = Split(split.from_rows, command=(str(tmp_path / "no-such-python"),))
    notices: list[str] = []
    tally = _render(filled, tmp_path / name, broken, notices)
    assert notices == []
    assert tally.counts.total() == 40


def test_the_helper_stops_and_removes_its_part_when_batcher_is_gone(
    filled: Ledger, tmp_path: Path
) -> None:
    """Its parent is not the one named (as when batcher died and it was given to init): it
    writes nothing and removes the part file."""
    part = tmp_path / "part"
    fd = os.open(part, os.O_CREAT | os.O_RDWR, 0o600)
    job = {
        "ledger": str(filled.path),
        "format": ".csv",
        "first": 1,
        "message": PENDING,
        "pending": {},
        "fd": fd,
        "part": str(part),
        "parent": os.getpid() + 1_000_000,  # no such process
    }
    done = subprocess.run(
        [sys.executable, "-m", "batcher.app.rendering"],
        input=json.dumps(job) + "\n",
        capture_output=True,
        text=True,
        pass_fds=(fd,),
        check=False,
    )
    os.close(fd)
    assert (done.returncode, done.stdout) == (1, "")
    assert not part.exists()


def test_a_reader_sees_the_outcomes_recorded_after_it_first_read(filled: Ledger) -> None:
    """The helper reads beside the process that holds the run: every query sees what is recorded
    by then (a transaction left open would keep showing it the rows as they were)."""
    first_open = _first_open(filled)
    with Ledger.reader(filled.path) as reader:
        assert _first_open(reader) == first_open
        rendering.Tally().rows(reader.report_rows(PENDING))  # a report read, as the helper does
        _record(filled, [first_open], OK)
        assert _first_open(reader) > first_open


def _first_open(ledger: Ledger) -> int:
    """The first row whose report line is not final (`failed`, `pending`)."""
    return next(
        int(str(cells[0]))
        for cells in ledger.report_rows(PENDING)
        if cells[6] not in ("success", "error", "invalid", "duplicate")
    )


def test_tallies_of_two_halves_add_up_in_row_order() -> None:
    first = Tally()
    first.counts.update({"success": 3, "invalid": 4})
    first.reasons[("failed", "HTTP 503")] = 2
    first.examples["invalid"] = [Example(n, n + 1, f"c{n}", "bad") for n in range(4)]
    later = Tally()
    later.counts.update({"invalid": 3, "error": 1})
    later.reasons.update({("failed", "HTTP 503"): 1, ("error", "Contact not found"): 1})
    later.examples["invalid"] = [Example(n, n + 1, f"c{n}", "bad") for n in range(10, 13)]
    later.examples["duplicate"] = [Example(20, 21, "c20", "duplicate of row 2")]
    first.extend(Tally.from_json(json.loads(json.dumps(later.to_json()))))
    assert first.counts == {"success": 3, "invalid": 7, "error": 1}
    assert first.reasons == {("failed", "HTTP 503"): 3, ("error", "Contact not found"): 1}
    assert [e.row for e in first.examples["invalid"]] == [0, 1, 2, 3, 10][:EXAMPLES]
    assert [e.row for e in first.examples["duplicate"]] == [20]
