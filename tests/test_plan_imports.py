"""A plan sends nothing, so it starts without the HTTP client: aiohttp (and the sandbox's server
on it) is imported only by a command that sends, searches or serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in this interpreter, then says which of the modules are loaded.
PROBE = """
import sys
from batcher.launch import main

sys.argv = ["batcher", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    print("exit", exit.code)
print(sorted(m for m in ("aiohttp", "batcher.sandbox.app", "batcher.sending.client")
             if m in sys.modules))
"""


def _probe(tmp_path: Path, *argv: str) -> list[str]:
    found = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return found.stdout.strip().splitlines()[-2:]


def test_a_plan_imports_no_http_client(tmp_path: Path) -> None:
    """`batcher plan` of the samples plans (exit 0) without importing aiohttp, the client or the
    sandbox's server."""
    samples = ROOT / "samples" / "contacts.csv"
    argv = ("plan", str(samples), "--action", "add", "--tags", "vip", "--location-id", "L1")
    assert _probe(tmp_path, *argv) == ["exit 0", "[]"]


def test_the_probe_sees_a_run_import_them(tmp_path: Path) -> None:
    """The probe can tell: a run of the samples against the embedded sandbox, which sends,
    imports all three."""
    samples = ROOT / "samples" / "contacts.csv"
    argv = ("run", str(samples), "--sandbox", "--action", "add", "--tags", "vip", "--yes", "-q")
    exit_line, loaded = _probe(tmp_path, *argv)
    assert exit_line.startswith("exit ")
    assert loaded == "['aiohttp', 'batcher.sandbox.app', 'batcher.sending.client']"
