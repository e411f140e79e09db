"""`batcher merge`: shard reports back into one report in input order, or a clear refusal."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from batcher.app.merging import IncompleteMergeError, merge_reports
from batcher.app.sharding import bucket
from batcher.cli import main
from batcher.domain.errors import InputError, UsageError
from batcher.domain.models import ReportLine, Status
from batcher.reports.formats import write_report

COLUMNS = ("contact_id", "location_id", "formula", "note")
LOCATIONS = [f"location{i:02d}abcdefghij" for i in range(12)]


def lines(
    count: int = 60, *, action: str = "add", tags: Sequence[str] = ("vip",), ambiguous: bool = False
) -> list[ReportLine]:
    """Report lines of a made-up input with a location column but no action or tags column (so
    those come from options: the same on every row), with cells a spreadsheet would run."""
    out = []
    for n in range(1, count + 1):
        location = LOCATIONS[n % len(LOCATIONS)]
        invalid = n % 9 == 0
        out.append(
            ReportLine(
                row=n,
                contact_id=f"c{n:019d}",
                location_id=location,
                action=action,
                tags=tuple(tags),
                status=Status.INVALID if invalid else Status.SUCCESS,
                message="contact id is empty" if invalid else "",
                old_tags=None if invalid else ("old", 'q"uote'),
                tags_added=None if invalid else tuple(tags),
                tags_removed=None if invalid else (),
                http_status=None if invalid else 201,
                attempts=None if invalid else 1,
                extra=(
                    f"c{n:019d}",
                    location,
                    "=SUM(A1)" if n % 7 == 0 else "a,b",
                    f"'=x{n}" if n == 5 and ambiguous else f"n{n}",
                ),
                line=n + 1 + n // 10,  # blank lines now and then
            )
        )
    return out


def shard_reports(
    tmp_path: Path, all_lines: list[ReportLine], count: int, suffixes: Sequence[str]
) -> list[Path]:
    paths = []
    for k in range(count):
        path = tmp_path / f"shard-{k}{suffixes[k % len(suffixes)]}"
        mine = [line for line in all_lines if bucket(line.location_id, count) == k]
        write_report(path, COLUMNS, mine)
        paths.append(path)
    return paths


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("suffixes", [[".csv"], [".jsonl"], [".xlsx"], [".csv", ".xlsx", ".jsonl"]])
@pytest.mark.parametrize("out", ["merged.csv", "merged.jsonl", "merged.xlsx"])
def test_merge_restores_input_order_and_equals_the_one_process_report(
    tmp_path: Path, suffixes: list[str], out: str
) -> None:
    """Whatever the formats, the merged report is the report of all rows, row by row."""
    every = lines()
    paths = shard_reports(tmp_path, every, 4, suffixes)
    whole = tmp_path / f"whole{Path(out).suffix}"
    write_report(whole, COLUMNS, every)
    result = merge_reports(paths, tmp_path / out, shards=4)
    assert result.rows == len(every)
    assert result.counts == {"success": 54, "invalid": 6}
    if out.endswith(".xlsx"):
        # Compare through a CSV conversion of each (an XLSX file's bytes hold timestamps).
        merge_reports([tmp_path / out], tmp_path / "a.csv")
        merge_reports([whole], tmp_path / "b.csv")
        assert csv_rows(tmp_path / "a.csv") == csv_rows(tmp_path / "b.csv")
    elif out.endswith(".csv") and ".csv" not in suffixes:
        assert (tmp_path / out).read_bytes() == whole.read_bytes()
    elif out.endswith(".jsonl"):
        assert (tmp_path / out).read_text() == whole.read_text()
    else:
        assert csv_rows(tmp_path / out) == csv_rows(whole)


def test_csv_in_csv_out_is_byte_for_byte_even_for_cells_made_inert(tmp_path: Path) -> None:
    every = lines(ambiguous=True)
    paths = shard_reports(tmp_path, every, 3, [".csv"])
    write_report(tmp_path / "whole.csv", COLUMNS, every)
    merge_reports(paths, tmp_path / "merged.csv")
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert "'=SUM(A1)" in (tmp_path / "merged.csv").read_text()


def test_into_jsonl_a_csv_cells_inert_mark_is_taken_off(tmp_path: Path) -> None:
    every = lines(ambiguous=True)
    paths = shard_reports(tmp_path, every, 2, [".csv"])
    merge_reports(paths, tmp_path / "merged.jsonl")
    records = [json.loads(x) for x in (tmp_path / "merged.jsonl").read_text().splitlines()]
    assert records[6]["formula"] == "=SUM(A1)"  # row 7
    assert records[0]["old_tags"] == ["old", 'q"uote']
    assert records[8]["old_tags"] is None  # row 9, invalid
    assert records[8]["http_status"] is None
    # The documented loss: a cell whose own text was '=x reads back from CSV as =x.
    assert records[4]["note"] == "=x5"


def test_a_shard_with_no_rows_merges_as_nothing(tmp_path: Path) -> None:
    every = [line for line in lines() if bucket(line.location_id, 16) != 3]
    write_report(tmp_path / "empty.jsonl", COLUMNS, [])
    write_report(tmp_path / "empty.csv", COLUMNS, [])
    write_report(tmp_path / "rest.csv", COLUMNS, every)
    result = merge_reports(
        [tmp_path / "empty.jsonl", tmp_path / "rest.csv", tmp_path / "empty.csv"],
        tmp_path / "m.csv",
    )
    assert result.rows == len(every)


def test_rows_that_no_report_holds_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    paths = shard_reports(tmp_path, lines(), 4, [".csv"])
    reported = [line.row for line in lines() if bucket(line.location_id, 4) != 2]
    # Rows after the last reported one cannot be seen missing without the shard count.
    missing = [
        line.row
        for line in lines()
        if bucket(line.location_id, 4) == 2 and line.row < max(reported)
    ]
    out = tmp_path / "merged.csv"
    with pytest.raises(IncompleteMergeError) as caught:
        merge_reports([paths[0], paths[1], paths[3]], out)
    message = str(caught.value)
    assert message.startswith(f"{len(missing)} rows are in no report (rows ")
    assert str(missing[0]) in message
    assert "a shard has not run yet" in message
    assert caught.value.exit_code == 1
    assert not out.exists()


def test_with_the_shard_count_a_missing_last_shard_is_found_even_without_gaps(
    tmp_path: Path,
) -> None:
    """Rows after the last reported row can only be seen missing when N is known."""
    last = LOCATIONS[0]
    k = bucket(last, 4)
    others = [loc for loc in LOCATIONS if bucket(loc, 4) != k]
    every = [
        ReportLine(**{**_fields(line), "location_id": others[n % len(others)] if n < 50 else last})
        for n, line in enumerate(lines())
    ]
    paths = shard_reports(tmp_path, every, 4, [".csv"])
    del paths[k]  # shard k holds rows 51-60 only: no gap among the rows reported
    assert merge_reports(paths, tmp_path / "m.csv").rows == 50
    with pytest.raises(
        IncompleteMergeError, match=rf"3 reports for 4 shards \(none seen of {k}/4\)"
    ):
        merge_reports(paths, tmp_path / "m2.csv", shards=4)


def test_the_same_report_twice_is_refused(tmp_path: Path) -> None:
    paths = shard_reports(tmp_path, lines(), 2, [".csv"])
    with pytest.raises(UsageError, match=r"is in both .*shard-0.csv and .*shard-0.csv"):
        merge_reports([paths[0], paths[1], paths[0]], tmp_path / "m.csv")


def test_reports_of_inputs_with_other_columns_are_refused(tmp_path: Path) -> None:
    write_report(tmp_path / "a.csv", COLUMNS, [lines()[0]])
    write_report(
        tmp_path / "b.csv", ("contact_id", "location_id", "formula", "email"), [lines()[1]]
    )
    with pytest.raises(UsageError, match=r"reports of different inputs .*input columns differ"):
        merge_reports([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "m.csv")


def test_reports_of_different_operations_are_refused(tmp_path: Path) -> None:
    added = [line for line in lines() if bucket(line.location_id, 2) == 0]
    removed = [line for line in lines(action="remove") if bucket(line.location_id, 2) == 1]
    write_report(tmp_path / "a.csv", COLUMNS, added)
    write_report(tmp_path / "b.jsonl", COLUMNS, removed)
    with pytest.raises(
        UsageError, match=r"reports of different operations: .* has action (add|remove)"
    ):
        merge_reports([tmp_path / "a.csv", tmp_path / "b.jsonl"], tmp_path / "m.csv")
    other_tags = [line for line in lines(tags=("gold",)) if bucket(line.location_id, 2) == 1]
    write_report(tmp_path / "c.csv", COLUMNS, other_tags)
    with pytest.raises(UsageError, match=r"different operations: .* has tags"):
        merge_reports([tmp_path / "a.csv", tmp_path / "c.csv"], tmp_path / "m.csv")


def test_rows_whose_lines_do_not_grow_with_their_numbers_are_of_different_inputs(
    tmp_path: Path,
) -> None:
    every = lines()
    a = [line for line in every if bucket(line.location_id, 2) == 0]
    b = [
        ReportLine(**{**_fields(line), "line": line.line + 1000})
        for line in every
        if bucket(line.location_id, 2) == 1
    ]
    write_report(tmp_path / "a.csv", COLUMNS, a)
    write_report(tmp_path / "b.csv", COLUMNS, b)
    with pytest.raises(UsageError, match="reports of different inputs"):
        merge_reports([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "m.csv")


def test_a_report_of_another_shard_count_is_refused(tmp_path: Path) -> None:
    paths = shard_reports(tmp_path, lines(), 3, [".csv"])
    with pytest.raises(
        UsageError, match=r"not a report of one shard of 2|are both reports of shard"
    ):
        merge_reports(paths, tmp_path / "m.csv", shards=2)


def test_a_file_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    (tmp_path / "input.csv").write_text("contact_id,tags\nabc,vip\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a batcher report"):
        merge_reports([tmp_path / "input.csv"], tmp_path / "m.csv")
    with pytest.raises(InputError, match="report not found"):
        merge_reports([tmp_path / "absent.csv"], tmp_path / "m.csv")
    with pytest.raises(UsageError, match="unknown report format"):
        merge_reports([tmp_path / "input.csv"], tmp_path / "m.txt")


def test_the_merge_command_prints_a_summary_and_exits_0_1_or_2(tmp_path: Path) -> None:
    paths = [str(p) for p in shard_reports(tmp_path, lines(), 3, [".csv", ".jsonl"])]
    runner = CliRunner()
    done = runner.invoke(main, ["merge", *paths, "--report", str(tmp_path / "m.xlsx")])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"batcher: merged 3 reports into {tmp_path / 'm.xlsx'}: 60 rows")
    done = runner.invoke(main, ["merge", *paths[:2], "--report", str(tmp_path / "m.csv")])
    assert done.exit_code == 1
    assert done.stderr.startswith("batcher: error: ")
    assert done.stderr.count("\n") == 1
    done = runner.invoke(main, ["merge", *paths, paths[0], "--report", str(tmp_path / "m.csv")])
    assert done.exit_code == 2
    assert done.stderr.count("\n") == 1
    done = runner.invoke(
        main, ["merge", *paths, "--report", str(tmp_path / "m.csv"), "--shards", "x"]
    )
    assert done.exit_code == 2
    assert "--shards 'x'" in done.stderr


def _fields(line: ReportLine) -> dict[str, object]:
    return {name: getattr(line, name) for name in ReportLine.__dataclass_fields__}
