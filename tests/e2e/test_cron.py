"""The README's crontab line, run as written (paths aside) by a shell in an empty folder."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from batcher.sandbox import Sandbox

from .conftest import contact_ids, write_csv

ROOT = Path(__file__).resolve().parents[2]


def crontab_command() -> str:
    """The command part (after the five schedule fields) of the README's crontab line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```cron\n", 1)[1].split("```", 1)[0]
    (line,) = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
    return line.split(None, 5)[5]


def run_cron(tmp_path: Path, sandbox: Sandbox, token: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "srv"
    (home / "exports").mkdir(parents=True)
    write_csv(home / "exports" / "nightly.csv", contact_ids(12))
    token_file = tmp_path / "token"
    token_file.write_text(token, encoding="utf-8")
    batcher = f"{shlex.quote(sys.executable)} -m batcher"
    command = (
        crontab_command()
        .replace("/srv/tagging/.venv/bin/batcher", batcher)
        .replace("/srv/tagging", shlex.quote(str(home)))
        .replace("/etc/batcher/token", shlex.quote(str(token_file)))
    )
    # Cron's own environment is nearly empty; the API is the sandbox, through the documented
    # BATCHER_<SECTION>_<KEY> variables.
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "BATCHER_API_BASE_URL": sandbox.url,
        "BATCHER_API_LOCATION_ID": "sandboxLocation00001",
    }
    return subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )


def test_the_crontab_line_works_on_its_first_night(tmp_path: Path, served: Sandbox) -> None:
    done = run_cron(tmp_path, served, served.token)
    assert done.returncode == 0, done.stdout + done.stderr
    report = tmp_path / "srv" / "reports" / "nightly.csv"
    assert report.read_text(encoding="utf-8").count("\n") == 13
    assert re.search(r"^batcher: run finished in .* UTC$", done.stdout, re.M)
    assert len(served.stats.applied) == 1


@pytest.mark.parametrize("token", ["a-wrong-token"])
def test_the_crontab_line_keeps_batcher_s_exit_status(
    tmp_path: Path, served: Sandbox, token: str
) -> None:
    """A refused token is exit 3 for cron too, not hidden by the line around batcher."""
    done = run_cron(tmp_path, served, token)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "the API refused the token from $BATCHER_TOKEN" in done.stderr
