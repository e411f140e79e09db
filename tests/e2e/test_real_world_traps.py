"""Issue 21's traps through the command line: what the user reads (nothing raw from a file, the
way the file was read, the operations to be sent) and what the sandbox saw."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import xlsxwriter
from click.testing import CliRunner, Result

from batcher.cli import main
from batcher.sandbox import Sandbox

from .conftest import LOCATION, contact_ids

IDS = contact_ids(4, seed=21)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "batcher.toml").write_text(
        f'[api]\nlocation_id = "{LOCATION}"\n[batch]\nsize = 5\n', encoding="utf-8"
    )
    (tmp_path / "batcher.toml").chmod(0o600)
    return CliRunner()


def invoke(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(main, list(args))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_an_escape_sequence_in_a_location_never_reaches_the_terminal_or_the_api(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Issue 21: ESC ]0; retitles and ESC [2J clears a terminal; the row is invalid, the plan
    and the run show it spelled out, and nothing carries it to the API."""
    text = (
        "contact_id,tags,action,location_id\n"
        f"{IDS[0]},vip,add,\x1b]0;pwned\x07\x1b[2J\n"
        f"{IDS[1]},vip,add,{LOCATION}\n"
    )
    write(tmp_path / "in.csv", text)
    plan = invoke(cli, "plan", "in.csv", "--base-url", served.url)
    ran = invoke(cli, "run", "in.csv", "--base-url", served.url)
    for result in (plan, ran):
        assert "\x1b" not in result.output
        assert "\x07" not in result.output
    assert '"\\u001b]0;pwned\\u0007\\u001b[2J" contains a control character' in plan.output
    assert ran.exit_code == 0, ran.output
    assert served.stats.total_requests == 1
    with (tmp_path / "in-report.csv").open(encoding="utf-8", newline="") as fh:
        statuses = [row["status"] for row in csv.DictReader(fh)]
    assert statuses == ["invalid", "success"]


def test_a_newline_in_a_location_cannot_forge_a_log_line(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """A quoted cell `loc<LF>batcher: run finished, nothing to see` is one escaped line of the
    text log (here: the all-invalid error), never a line of its own."""
    text = (
        "contact_id,tags,action,location_id\n"
        f'{IDS[0]},vip,add,"loc\nbatcher: run finished, nothing to see"\n'
    )
    write(tmp_path / "in.csv", text)
    result = invoke(cli, "run", "in.csv", "--base-url", served.url)
    assert result.exit_code == 2, result.output
    assert not any(
        line.startswith("batcher: run finished, nothing to see")
        for line in result.output.splitlines()
    )
    assert served.stats.total_requests == 0


def test_a_file_name_with_an_escape_sequence_is_shown_escaped(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Issue 21: the file name is echoed spelled out, in the plan and in an error."""
    name = "red\x1b[31m.csv"
    write(tmp_path / name, f"contact_id,tags,action\n{IDS[0]},vip,add\n")
    plan = invoke(cli, "plan", name, "--base-url", served.url)
    missing = invoke(cli, "plan", "gone\x1b[2J.csv", "--base-url", served.url)
    assert plan.exit_code == 0, plan.output
    assert "batcher: plan for red\\x1b[31m.csv: 1 rows" in plan.output
    assert missing.exit_code == 2
    assert "batcher: error: gone\\x1b[2J.csv: file not found" in missing.output
    assert "\x1b" not in plan.output + missing.output


def test_the_plan_names_the_reading_and_the_distinct_operations(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """`plan` says how the file was read and lists the operations with their rows."""
    text = (
        "sep=;\ncontact_id;tags;action\n"
        f"{IDS[0]};\"['vip', 'gold']\";add\n"
        f"{IDS[1]};gold, vip;add\n"
        f"{IDS[2]};\"['old-segment']\";remove\n"
    )
    write(tmp_path / "in.csv", text, "cp1252")
    result = invoke(cli, "plan", "in.csv", "--base-url", served.url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith('  read as CSV, UTF-8 (valid throughout), delimiter ";"')
    start = lines.index("  2 distinct operations:")
    assert lines[start + 1 : start + 3] == [
        '            2 rows  add ["gold", "vip"]',
        '            1 rows  remove ["old-segment"]',
    ]


def test_a_code_page_file_stops_with_the_readings_and_runs_once_named(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Issue 21: `клиент` in cp1251 is never sent as `êëèåíò`: exit 2 and nothing sent; with
    --encoding cp1251 it is sent right, and the summary says the encoding was named."""
    write(tmp_path / "in.csv", f"contact_id,tags,action\n{IDS[0]},клиент,add\n", "cp1251")
    refused = invoke(cli, "run", "in.csv", "--base-url", served.url)
    assert refused.exit_code == 2
    assert '"клиент" in cp1251' in refused.output
    assert served.stats.total_requests == 0
    ran = invoke(cli, "run", "in.csv", "--encoding", "cp1251", "--base-url", served.url)
    assert ran.exit_code == 0, ran.output
    assert '  read as    CSV, cp1251 (as named), delimiter "," (sniffed)' in ran.output
    summary = json.loads((tmp_path / "in-report.summary.json").read_text(encoding="utf-8"))
    assert summary["reading"] == 'CSV, cp1251 (as named), delimiter "," (sniffed)'
    assert summary["operations"] == [
        {"action": "add", "tags": ["клиент"], "remove_all": False, "rows": 1}
    ]
    assert served.universe.tags(IDS[0]) == ("клиент",)


def test_plan_rejects_is_written_when_every_row_is_invalid(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Issue 21: `plan --rejects` writes the file (every row) even though the plan is exit 2."""
    write(tmp_path / "in.csv", f"contact_id,tags,action\nnot-an-id,vip,add\n{IDS[0]},,add\n")
    result = invoke(cli, "plan", "in.csv", "--rejects", "rejects.csv", "--base-url", served.url)
    assert result.exit_code == 2, result.output
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(row["row"], row["status"]) for row in rows] == [("1", "invalid"), ("2", "invalid")]


def test_the_numeric_id_reason_is_one_reason_in_the_all_invalid_line(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Issue 21: the reason for an id typed as a number is counted whole, not in pieces."""
    book = xlsxwriter.Workbook(str(tmp_path / "in.xlsx"))
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, ["contact_id", "tags", "action"])
    for row in (1, 2):
        sheet.write_number(row, 0, 12345678901234567890)
        sheet.write_row(row, 1, ["vip", "add"])
    book.close()
    result = invoke(cli, "run", "in.xlsx", "--base-url", served.url)
    assert result.exit_code == 2, result.output
    assert (
        "Excel keeps only 15 digits, so format the id column as Text and enter the ids again "
        "(2 rows)" in result.output
    )
