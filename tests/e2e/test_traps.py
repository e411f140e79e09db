"""The traps real users fell into, each as it was found: the exit status, what the sandbox saw
(nothing, where nothing may be sent) and the one line the user reads."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from batcher.cli import main
from batcher.sandbox import RateConfig, Sandbox, SandboxConfig

from .conftest import LOCATION, ThreadedSandbox, contact_ids, write_csv
from .helpers import untagged

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "batcher.toml").write_text(
        f'[api]\nlocation_id = "{LOCATION}"\n[batch]\nsize = 5\n', encoding="utf-8"
    )
    (tmp_path / "batcher.toml").chmod(0o600)
    return CliRunner()


def run(cli: CliRunner, sandbox: Sandbox, *args: str) -> Result:
    return cli.invoke(main, ["run", *args, "--base-url", sandbox.url])


def errors(result: Result) -> list[str]:
    return [
        line for line in untagged(result.output).splitlines() if line.startswith("batcher: error:")
    ]


def report_rows(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--tags", ""], "no tags to apply (12 rows)"),
        (["--tags", "vip", "--id-column", "email"], 'contact id "…" does not match'),
    ],
)
def test_a_run_where_every_row_is_invalid_is_exit_2_with_the_reasons(
    cli: CliRunner, tmp_path: Path, served: Sandbox, args: list[str], reason: str
) -> None:
    """Cron must not see success when nothing could be sent; the reasons come with counts."""
    write_csv(tmp_path / "in.csv", contact_ids(12))
    result = run(cli, served, "in.csv", "--action", "add", *args)
    assert result.exit_code == 2, result.output
    (line,) = errors(result)
    assert "all 12 rows are invalid, nothing to send" in line
    assert reason in line
    assert served.stats.total_requests == 0
    assert {row["status"] for row in report_rows(tmp_path / "in-report.csv")} == {"invalid"}


def test_no_location_anywhere_makes_every_row_invalid_and_exit_2(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    (tmp_path / "batcher.toml").write_text("", encoding="utf-8")
    write_csv(tmp_path / "in.csv", contact_ids(3))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "vip")
    assert result.exit_code == 2, result.output
    assert "no location id (give --location-id" in errors(result)[0]
    assert served.stats.total_requests == 0


def test_a_report_path_equal_to_the_input_is_refused(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Today's trap: `--report` equal to the input replaced the input file with the report."""
    source = write_csv(tmp_path / "in.csv", contact_ids(3))
    before = source.read_bytes()
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "x", "--report", "in.csv")
    assert result.exit_code == 2
    assert errors(result) == [
        "batcher: error: in.csv: the report would replace the input file; give --report "
        "another path"
    ]
    assert source.read_bytes() == before
    assert served.stats.total_requests == 0


def test_a_refused_token_names_the_variable_it_came_from(
    cli: CliRunner, tmp_path: Path, served: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """401 says where the token came from and what to put there, not just 'run again'."""
    monkeypatch.setenv("MY_CRM_TOKEN", "not-the-token-at-all")
    (tmp_path / "batcher.toml").write_text(
        f'[api]\nlocation_id = "{LOCATION}"\ntoken_env = "MY_CRM_TOKEN"\n', encoding="utf-8"
    )
    write_csv(tmp_path / "in.csv", contact_ids(3))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "x")
    assert result.exit_code == 3, result.output
    # A stop that needs a person is said at `error`, on a line naming the run.
    said = untagged(result.output)
    assert "batcher: error: stopped: the API refused the token from $MY_CRM_TOKEN" in said
    assert "not-the-token-at-all" not in result.output
    assert served.stats.by_status == {401: 1}
    assert {row["status"] for row in report_rows(tmp_path / "in-report.csv")} == {"pending"}


def test_a_forbidden_location_is_named(cli: CliRunner, tmp_path: Path, served: Sandbox) -> None:
    write_csv(tmp_path / "in.csv", contact_ids(3))
    result = run(
        cli, served, "in.csv", "--action", "add", "--tags", "x", "--location-id", "Zz" * 10
    )
    assert result.exit_code == 3, result.output
    assert f"the token has no access to location {'Zz' * 10}" in result.output
    assert served.stats.applied == []


def test_a_spent_daily_quota_says_what_the_headers_say_and_no_made_up_reset(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandboxes: list[Sandbox]
) -> None:
    """The stop quotes the daily headers and says the API gives no reset time (no guess)."""
    config = SandboxConfig(rate=RateConfig(max=100, interval_ms=10_000, daily=1))
    with ThreadedSandbox(config) as sandbox:
        sandboxes.append(sandbox)
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        write_csv(tmp_path / "in.csv", contact_ids(10))
        result = run(cli, sandbox, "in.csv", "--action", "add", "--tags", "x")
    assert result.exit_code == 3, result.output
    assert "the daily request quota of 1 location is reached: " in result.output
    assert f"{LOCATION} (X-RateLimit-Daily-Remaining is 0" in result.output
    assert "the API does not say when it resets" in result.output
    assert "comes back at" not in result.output
    assert len(sandbox.stats.applied) == 1


# aiohttp warns about sending a body over 1 MiB in one piece; that size is the point here.
@pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")
def test_a_permanent_rejection_never_says_run_again(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """A tag the API refuses (here a body over the server's size limit) cannot succeed on a
    retry: the rows say so, and so does the summary."""
    write_csv(tmp_path / "in.csv", contact_ids(2))
    (tmp_path / "batcher.toml").write_text(
        f'[api]\nlocation_id = "{LOCATION}"\n[input]\nmax_tag_length = 3000000\n',
        encoding="utf-8",
    )
    huge = "x" * 2_000_000  # past the server's 1 MiB body limit: 413
    result = run(cli, served, "in.csv", "--action", "add", "--tags", huge)
    assert result.exit_code == 1, result.output[-500:]
    rows = report_rows(tmp_path / "in-report.csv")
    assert {row["status"] for row in rows} == {"failed"}
    assert "sending it again will not help" in rows[0]["message"]
    assert "run the same command again" not in rows[0]["message"]
    assert "the API refused them: fix those rows" in result.output


def test_the_summary_says_when_what_where_and_the_top_reasons(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """The mailed summary of a cron run stands on its own."""
    served.universe.delete_contact(contact_ids(4)[0])
    write_csv(tmp_path / "in.csv", contact_ids(4))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "vip")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("batcher: run finished"))
    assert " UTC" in lines[start]
    assert lines[start + 1].split() == ["input", "in.csv", "(4", "rows)"]
    assert lines[start + 2] == '  read as    CSV, UTF-8 (valid throughout), delimiter "," (sniffed)'
    assert lines[start + 3] == f'  operation  add ["vip"] at location {LOCATION}'
    assert lines[start + 4].startswith("  target     127.0.0.1:")
    assert lines[start + 4].endswith("(token from $BATCHER_TOKEN)")
    assert lines[start + 5].split() == ["locations", "1"]
    assert lines[-1].split() == ["error", "1", "contact", "is", "deleted"]


def test_a_declined_confirmation_sends_nothing(
    cli: CliRunner, tmp_path: Path, served: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal batcher shows what it is about to do and asks; 'no' sends nothing."""
    monkeypatch.setattr("batcher.cli.terminal.interactive", lambda: True)
    write_csv(tmp_path / "in.csv", contact_ids(7))
    result = cli.invoke(
        main,
        ["run", "in.csv", "--action", "add", "--tags", "vip", "--base-url", served.url],
        input="n\n",
    )
    assert result.exit_code == 2, result.output
    assert 'about to add ["vip"] at location' in result.output
    assert "7 rows in 2 requests over 1 location" in result.output
    assert "not confirmed: nothing was sent" in result.output
    assert served.stats.total_requests == 0
    yes = cli.invoke(
        main,
        ["run", "in.csv", "--action", "add", "--tags", "vip", "--base-url", served.url],
        input="y\n",
    )
    assert yes.exit_code == 0, yes.output
    assert len(served.stats.applied) == 2


def test_yes_and_a_non_terminal_are_never_asked(
    cli: CliRunner, tmp_path: Path, served: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("batcher.cli.terminal.interactive", lambda: True)
    write_csv(tmp_path / "in.csv", contact_ids(3))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "vip", "--yes")
    assert result.exit_code == 0, result.output
    assert "about to" not in result.output


def test_an_unfinished_run_of_another_input_is_mentioned_again(
    cli: CliRunner, tmp_path: Path, served: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last night's failed rows must not vanish because tonight's file is another one."""
    write_csv(tmp_path / "monday.csv", contact_ids(3, seed=1))
    write_csv(tmp_path / "tuesday.csv", contact_ids(3, seed=2))
    monkeypatch.setenv("BATCHER_TOKEN", "wrong-token-on-monday")
    assert run(cli, served, "monday.csv", "--action", "add", "--tags", "x").exit_code == 3
    monkeypatch.setenv("BATCHER_TOKEN", served.token)
    result = run(cli, served, "tuesday.csv", "--action", "add", "--tags", "x")
    assert result.exit_code == 0, result.output
    assert "an unfinished run of another input is in the state directory" in result.output
    assert str(tmp_path / "monday.csv") in result.output
    assert "0 failed, 3 pending rows" in result.output


def test_finished_runs_older_than_keep_days_are_pruned(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    write_csv(tmp_path / "in.csv", contact_ids(3))
    assert run(cli, served, "in.csv", "--action", "add", "--tags", "x").exit_code == 0
    (old,) = (tmp_path / ".batcher").glob("run-*.sqlite")
    month_ago = time.time() - 31 * 86_400
    os.utime(old, (month_ago, month_ago))
    assert run(cli, served, "in.csv", "--action", "add", "--tags", "y").exit_code == 0
    assert not old.exists()
    assert len(list((tmp_path / ".batcher").glob("run-*.sqlite"))) == 1


def test_state_is_private(cli: CliRunner, tmp_path: Path, served: Sandbox) -> None:
    """The state holds the input's emails and phones: owner-only folder and files."""
    write_csv(tmp_path / "in.csv", contact_ids(3))
    assert run(cli, served, "in.csv", "--action", "add", "--tags", "x").exit_code == 0
    state = tmp_path / ".batcher"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = list(state.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_state_directory_anyone_may_write_is_refused(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    (tmp_path / ".batcher").mkdir(mode=0o777)
    (tmp_path / ".batcher").chmod(0o777)
    write_csv(tmp_path / "in.csv", contact_ids(3))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "x")
    assert result.exit_code == 2
    assert "state directory is writable by anyone" in errors(result)[0]
    assert served.stats.total_requests == 0


def test_a_planted_lock_symlink_is_never_written_through(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    (tmp_path / ".batcher").mkdir(mode=0o700)
    (tmp_path / ".batcher" / "lock").symlink_to(victim)
    write_csv(tmp_path / "in.csv", contact_ids(3))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "x")
    assert result.exit_code == 2
    assert victim.read_text(encoding="utf-8") == "precious"
    assert served.stats.total_requests == 0


def test_plan_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`batcher plan ... | head -1`: no BrokenPipeError traceback."""
    write_csv(tmp_path / "in.csv", contact_ids(3))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = (
        f"{sys.executable} -m batcher plan in.csv --action add --tags x "
        f"--location-id {LOCATION} | head -c 10"
    )
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == "batcher: p"
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


def test_an_xlsx_report_too_long_for_excel_is_refused_before_sending(
    cli: CliRunner, tmp_path: Path, served: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 promises nothing was sent: the sheet's row limit is checked after loading and
    before the first request (the limit is lowered here instead of loading a million rows)."""
    monkeypatch.setattr("batcher.reports.formats.XLSX_MAX_DATA_ROWS", 5)
    write_csv(tmp_path / "in.csv", contact_ids(6))
    result = run(cli, served, "in.csv", "--action", "add", "--tags", "x", "--report", "r.xlsx")
    assert result.exit_code == 2, result.output
    assert "do not fit in an XLSX sheet" in errors(result)[0]
    assert served.stats.total_requests == 0


def test_a_highlevel_export_without_tags_is_refused_before_anything_is_sent(
    cli: CliRunner, served: Sandbox
) -> None:
    """Today's trap: `--action remove` on an export took its Tags column (the contacts'
    current tags) as the tags to remove, and stripped 350 contacts."""
    export = ROOT / "samples" / "highlevel_export.csv"
    result = run(cli, served, str(export), "--action", "remove")
    assert result.exit_code == 2
    assert errors(result) == [
        f"batcher: error: {export} is a HighLevel contact export: its Tags column holds the "
        'contacts\' current tags, not tags to apply; give --tags "a,b" (or --remove-all-tags)'
    ]
    assert served.stats.total_requests == 0


def test_a_number_typed_into_an_excel_id_cell_is_never_sent(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Excel keeps 15 digits: 1.23456789012345E+19 must not go out as 12345678901234499584."""
    import xlsxwriter

    ids = contact_ids(2)
    book = xlsxwriter.Workbook(str(tmp_path / "in.xlsx"))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["contact_id", "email"])
    sheet.write_row(1, 0, [ids[0], "a@example.com"])
    sheet.write_number(2, 0, 1.23456789012345e19)
    sheet.write_row(3, 0, [ids[1], "c@example.com"])
    book.close()
    result = run(cli, served, "in.xlsx", "--action", "add", "--tags", "vip")
    assert result.exit_code == 0, result.output
    rows = report_rows(tmp_path / "in-report.csv")
    assert [(row["line"], row["status"]) for row in rows] == [
        ("2", "success"),
        ("3", "invalid"),
        ("4", "success"),
    ]
    assert "format the id column as Text" in rows[1]["message"]
    sent = [c for request in served.stats.applied for c in request.update.contacts]
    assert sorted(sent) == sorted(ids)


def test_a_utf8_file_with_one_stray_byte_stops_naming_the_line_and_byte(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Today's trap: the whole file was read as cp1252, and `café` went out as `cafÃ©`."""
    ids = contact_ids(3)
    head = f"contact_id,tags\n{ids[0]},thé\n{ids[1]},caf".encode()
    tail = f"\n{ids[2]},été\n".encode()
    (tmp_path / "in.csv").write_bytes(head + b"\xe9" + tail)  # one cp1252 é on line 3
    result = run(cli, served, "in.csv", "--action", "add")
    assert result.exit_code == 2
    (line,) = errors(result)
    assert "in.csv: line 3: byte 67 (0xE9)" in line
    assert "is not valid UTF-8 in a file that is otherwise UTF-8" in line
    assert served.stats.total_requests == 0


def test_a_header_only_file_is_exit_2_unless_allowed(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """A quiet night's export is fine when the user says so; otherwise it is a broken export."""
    (tmp_path / "in.csv").write_text("contact_id,email\n", encoding="utf-8")
    refused = run(cli, served, "in.csv", "--action", "add", "--tags", "x")
    assert refused.exit_code == 2
    assert "no data rows (only a header); nothing to do. Give --allow-empty" in refused.output
    allowed = run(cli, served, "in.csv", "--action", "add", "--tags", "x", "--allow-empty")
    assert allowed.exit_code == 0, allowed.output
    assert "nothing to do: the input has no rows" in allowed.output
    assert served.stats.total_requests == 0


def test_a_report_fed_back_as_input_keeps_its_tag_lists(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    """Fix-and-re-upload: a report's `tags` cells are JSON lists, read as lists (no junk tags
    such as `["florida"`), and the report's own result columns are carried, not confused."""
    ids = contact_ids(2)
    write_csv(tmp_path / "in.csv", ids, tags=["florida,lead", "vip"])
    assert run(cli, served, "in.csv", "--action", "add").exit_code == 0
    served.stats.applied.clear()
    result = run(cli, served, "in-report.csv", "--action", "remove", "--id-column", "contact_id")
    assert result.exit_code == 0, result.output
    assert sorted(tuple(r.update.tags) for r in served.stats.applied) == [
        ("florida", "lead"),
        ("vip",),
    ]


def test_tags_with_control_characters_or_too_long_are_invalid(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    ids = contact_ids(3)
    write_csv(tmp_path / "in.csv", ids, tags=["ok", "bad\x1b[31m", "x" * 300])
    result = run(cli, served, "in.csv", "--action", "add")
    assert result.exit_code == 0, result.output
    rows = report_rows(tmp_path / "in-report.csv")
    assert [row["status"] for row in rows] == ["success", "invalid", "invalid"]
    assert "contains a control character" in rows[1]["message"]
    assert "more than input.max_tag_length (255)" in rows[2]["message"]
    too_long = run(cli, served, "in.csv", "--action", "add", "--tags", "y" * 300)
    assert too_long.exit_code == 2
    assert served.stats.total_requests == 1


def test_a_tsv_file_is_tab_separated_and_delimiter_chooses(
    cli: CliRunner, tmp_path: Path, served: Sandbox
) -> None:
    ids = contact_ids(2)
    (tmp_path / "in.tsv").write_text(
        f"contact_id\ttags\n{ids[0]}\ta,b\n{ids[1]}\tc\n", encoding="utf-8"
    )
    assert run(cli, served, "in.tsv", "--action", "add").exit_code == 0
    (tmp_path / "in.txt").write_text(f"contact_id;tags\n{ids[0]};d\n", encoding="utf-8")
    result = run(cli, served, "in.txt", "--action", "add", "--delimiter", "semicolon")
    assert result.exit_code == 0, result.output
    assert sorted(tuple(r.update.tags) for r in served.stats.applied) == [
        ("a", "b"),
        ("c",),
        ("d",),
    ]
