"""The command line: help for every command, the demo, one-line errors with SPEC's exit codes."""

from __future__ import annotations

import asyncio
import csv
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import click
import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.state import StateLock

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEMO = [
    "run",
    "--sandbox",
    str(SAMPLES / "contacts.csv"),
    "--action",
    "add",
    "--tags",
    "vip,newsletter",
]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Runs in an empty working directory with no token in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BATCHER_TOKEN", raising=False)
    return CliRunner()


def test_every_command_has_help_text(cli: CliRunner) -> None:
    assert isinstance(main, click.Group)
    for name, command in main.commands.items():
        assert command.help, name
        result = cli.invoke(main, [name, "--help"])
        assert result.exit_code == 0
        assert "Usage: main " + name in result.output or f"{name} [OPTIONS]" in result.output
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"


def test_the_demo_shows_every_kind_of_outcome(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(main, DEMO)
    assert result.exit_code == 0, result.output
    assert "batcher: run finished" in result.output
    with (tmp_path / "contacts-report.csv").open(encoding="utf-8", newline="") as fh:
        lines = list(csv.DictReader(fh))
    kinds = {line["status"] for line in lines}
    assert kinds == {"success", "error", "invalid", "duplicate"}
    # Blank lines, and lines of empty cells only, are not rows (SPEC "Input").
    text = (SAMPLES / "contacts.csv").read_text("utf-8")
    data_rows = sum(1 for line in text.splitlines()[1:] if line.strip(", "))
    assert len(lines) == data_rows
    messages = {line["message"] for line in lines if line["status"] == "error"}
    assert messages == {"contact is deleted", "contact does not belong to account"}


def test_the_excel_sample_runs_with_per_row_actions(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(
        main, ["run", "--sandbox", str(SAMPLES / "contacts.xlsx"), "--report", "r.jsonl"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.jsonl").read_text("utf-8").count("\n") == 200


def test_plan_sends_nothing_and_leaves_no_run_behind(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(main, ["plan", *DEMO[1:]])
    assert result.exit_code == 0, result.output
    assert "to send" in result.output
    assert "6 requests in 1 group" in result.output
    assert list((tmp_path / ".batcher").glob("*.sqlite")) == []
    assert not (tmp_path / "contacts-report.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "in.csv", "--action", "add", "--tags", "x"], "BATCHER_TOKEN is not set"),
        (
            ["run", "missing.csv", "--sandbox", "--action", "add", "--tags", "x"],
            "missing.csv: file not found",
        ),
        (["run", "in.csv", "--sandbox", "--tags", "x"], "no action column"),
        (
            ["run", "in.csv", "--sandbox", "--action", "add", "--tags", "x", "--report", "r.pdf"],
            "r.pdf",
        ),
        (
            ["run", "in.csv", "--sandbox", "--action", "add", "--remove-all-tags"],
            "--remove-all-tags goes with",
        ),
        (
            [
                "run",
                "in.csv",
                "--sandbox",
                "--action",
                "add",
                "--tags",
                "x",
                "--config",
                "bad.toml",
            ],
            "limits.concurrency",
        ),
        (["plan", "in.csv", "--action", "add", "--tags", "x", "--id-column", "nope"], "nope"),
        (["sandbox", "--rate", "fast"], "rate"),
    ],
)
def test_a_user_error_is_one_line_with_exit_2(
    cli: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "in.csv").write_text("contact_id\nabcdefghij0123456789\n", encoding="utf-8")
    (tmp_path / "bad.toml").write_text("[limits]\nconcurrency = 0\n", encoding="utf-8")
    result = cli.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_second_run_on_the_same_state_directory_is_refused(
    cli: CliRunner, tmp_path: Path
) -> None:
    lock = StateLock(tmp_path / ".batcher")
    lock.acquire()
    try:
        result = cli.invoke(main, DEMO)
    finally:
        lock.release()
    assert result.exit_code == 2
    assert "another batcher run" in result.output


async def test_batcher_sandbox_serves_the_seed_example(tmp_path: Path) -> None:
    """`batcher sandbox` prints its URL and answers the seed's curl example (JSON boolean)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batcher", "sandbox", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = (await process.stdout.readline()).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        body = {
            "contacts": [
                "qFSqySFkVvNzOSqgGqFi",
                "abcdef",
                "qFSqySFkVvNzOSqgGqFi",
                "3ualbhnV7j3n3a9r2moD",
            ],
            "tags": ["tag-1", "tag-2"],
            "locationId": "sandboxLocation00001",
            "removeAllTags": False,
        }
        headers = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/contacts/bulk/tags/update/add", json=body, headers=headers
            ) as answer,
        ):
            assert answer.status == 201
            payload = await answer.json()
        assert payload["errorCount"] == 1
        assert [entry["type"] for entry in payload["responses"]] == [
            "success",
            "error",
            "success",
            "success",
        ]
    finally:
        process.send_signal(signal.SIGINT)
        await process.communicate()
    assert process.returncode == 0


def test_a_port_in_use_is_one_line_naming_the_fix(cli: CliRunner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli.invoke(main, ["sandbox", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "choose another --port" in result.output


README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_command_and_option_appears_in_the_readme() -> None:
    """Each command (as `batcher NAME`) and each of its long options is documented."""
    text = README.read_text(encoding="utf-8")
    assert isinstance(main, click.Group)
    missing: list[str] = []
    for name, command in sorted(main.commands.items()):
        if f"batcher {name}" not in text:
            missing.append(f"batcher {name}")
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    if opt.startswith("--") and opt not in text:
                        missing.append(f"batcher {name} {opt}")
    assert not missing, "missing from README.md: " + ", ".join(missing)
