"""The README's crontab line, run as written (paths aside) by a shell, night after night."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from batcher.sandbox import Sandbox, SandboxConfig

from .conftest import LOCATION, contact_ids, write_csv
from .helpers import BOUND_S, SECRET, Gate, read_csv, read_until

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = re.compile(r"^batcher\[run ([0-9a-f]{16})\]: ", re.M)
RESUME = re.compile(r"`(batcher resume [0-9a-f]{16})`")


def crontab_command() -> str:
    """The command part (after the five schedule fields) of the README's crontab line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```cron\n", 1)[1].split("```", 1)[0]
    (line,) = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
    return line.split(None, 5)[5]


class Server:
    """The place cron runs in: /srv/tagging, the token file, a `date` that says which night
    it is (a wrapper first on PATH: the line calls `date` as cron would), cron's near-empty
    environment, and the API (a sandbox) through the documented BATCHER_* variables."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.home = tmp_path / "srv"
        (self.home / "exports").mkdir(parents=True)
        self.token = tmp_path / "token"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        date = self.bin / "date"
        date.write_text('#!/bin/sh\nprintf "%s\\n" "$NIGHT"\n', encoding="utf-8")
        date.chmod(0o755)
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "BATCHER_API_BASE_URL": url,
            "BATCHER_API_LOCATION_ID": LOCATION,
            # Small requests, one at a time: a night has several, and one can be held.
            "BATCHER_BATCH_SIZE": "5",
            "BATCHER_LIMITS_CONCURRENCY": "1",
        }
        batcher = f"{shlex.quote(sys.executable)} -m batcher"
        self.command = (
            crontab_command()
            .replace("/srv/tagging/.venv/bin/batcher", batcher)
            .replace("/srv/tagging", shlex.quote(str(self.home)))
            .replace("/etc/batcher/token", shlex.quote(str(self.token)))
        )

    def export(self, ids: list[str], token: str) -> None:
        """Tonight's export replaces last night's, as the CRM's export job does."""
        write_csv(self.home / "exports" / "nightly.csv", ids)
        self.token.write_text(token, encoding="utf-8")

    async def night(self, date: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "sh",
            "-c",
            self.command,
            cwd=self.home.parent,
            env={**self.env, "NIGHT": date},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def batcher(self, command: str, token: str) -> tuple[int, str, str]:
        """A command a person types in /srv/tagging the next morning."""
        argv = [sys.executable, "-m", "batcher", *shlex.split(command)[1:]]
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            cwd=self.home,
            env={**self.env, "BATCHER_TOKEN": token},
            capture_output=True,
            text=True,
            check=False,
            timeout=BOUND_S,
        )
        return done.returncode, done.stdout, done.stderr

    def report(self, date: str) -> Path:
        return self.home / "reports" / f"nightly-{date}.csv"


async def ended(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), timeout=BOUND_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def timeout_of(shell: int) -> int:
    """The `timeout` process of the line: the shell itself (a shell may exec the line's last
    command) or one of its children."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
        except OSError:
            continue
        name, fields = rest.rsplit(")", 1)
        parent = int(fields.split()[1])
        if name == "(timeout" and shell in (int(pid), parent):
            return int(pid)
    raise AssertionError(f"no timeout process under the shell {shell}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def gated(sandboxes: list[Sandbox]) -> AsyncIterator[tuple[Sandbox, Gate]]:
    """A sandbox whose latency is a gate the test holds and opens (no timing luck)."""
    gate = Gate()
    sandbox = Sandbox(SandboxConfig(token=SECRET, rate=None), sleep=gate)
    await sandbox.start()
    sandboxes.append(sandbox)
    yield sandbox, gate
    await gate.open()
    await sandbox.stop()


async def test_three_nights_keep_every_report_and_strand_no_row(
    tmp_path: Path, gated: tuple[Sandbox, Gate]
) -> None:
    """Night 1 good, night 2 a refused token (exit 3), night 3 stopped by `timeout`: every
    night's report is kept under its date, the last good one is never touched, `status` names
    the stranded runs' command and that command finishes them with the inputs gone."""
    sandbox, gate = gated
    server = Server(tmp_path, sandbox.url)

    # Night 1: all good, and cron mails nothing.
    server.export(contact_ids(12, seed=1), SECRET)
    code, out, err = await ended(await server.night("2026-12-01"))
    assert (code, out, err) == (0, "", "")
    good = server.report("2026-12-01")
    assert [row["status"] for row in read_csv(good)] == ["success"] * 12
    good_bytes = digest(good)

    # Night 2: the token was rotated and not updated: exit 3, said at `error` with the run id.
    server.export(contact_ids(12, seed=2), "a-rotated-token")
    code, out, err = await ended(await server.night("2026-12-02"))
    assert code == 3, err
    assert out == ""
    refused = RUN_ID.match(err)
    assert refused is not None, err
    assert ": error: stopped: the API refused the token" in err
    assert {row["status"] for row in read_csv(server.report("2026-12-02"))} == {"pending"}
    assert digest(good) == good_bytes

    # Night 3: the API is slow; `timeout` stops the run while its 2nd request is in flight.
    server.export(contact_ids(30, seed=3), SECRET)
    gate.open_for = gate.calls + 1  # tonight's first answer passes, the second is held
    night = await server.night("2026-12-03")
    await gate.held(gate.open_for + 1)
    os.kill(timeout_of(night.pid), signal.SIGALRM)  # what `timeout` gets when 3h are up
    code, out, err = await ended_after(night, gate)
    assert code == 3, err  # --preserve-status: batcher's own 3, not timeout's 124
    statuses = [row["status"] for row in read_csv(server.report("2026-12-03"))]
    assert statuses == ["success"] * 10 + ["pending"] * 20
    # --strict: night 2's stranded rows are an error line tonight, naming the command.
    assert f"`batcher resume {refused.group(1)}` finishes it" in err
    assert digest(good) == good_bytes

    # The morning after: the inputs are gone (only the exports folder's latest remains).
    for kept in (server.home / "inputs").iterdir():
        kept.unlink()
    code, listing, _ = await server.batcher("batcher status", SECRET)
    assert code == 0
    commands = RESUME.findall(listing)
    assert len(commands) == 2, listing  # nights 2 and 3; night 1 finished
    for command in commands:
        code, out, err = await server.batcher(command, SECRET)
        assert code == 0, out + err
    for date, rows in (("2026-12-02", 12), ("2026-12-03", 30)):
        assert [row["status"] for row in read_csv(server.report(date))] == ["success"] * rows
    code, listing, _ = await server.batcher("batcher status", SECRET)
    assert "unfinished" not in listing
    assert digest(good) == good_bytes
    assert sorted(path.name for path in (server.home / "reports").glob("*.csv")) == [
        "nightly-2026-12-01.csv",
        "nightly-2026-12-02.csv",
        "nightly-2026-12-03.csv",
    ]


async def ended_after(process: asyncio.subprocess.Process, gate: Gate) -> tuple[int, str, str]:
    """Once batcher says it got the SIGTERM that `timeout` sends, let the request in flight be
    answered; then wait for the end."""
    seen: list[str] = []
    await read_until(process.stderr, "SIGTERM received", seen)
    await gate.open()
    code, out, err = await ended(process)
    return code, out, "".join(seen) + err
