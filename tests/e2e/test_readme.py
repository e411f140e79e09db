"""The README's opening and its Python example: the three ways in lead, the contents list every
section, and the "From Python" example runs as written against the embedded sandbox."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BOUND_S = 120.0  # a hang becomes a failure; no assertion depends on time


def _sections() -> list[str]:
    """The README's `##` headings, code blocks left out."""
    headings: list[str] = []
    fenced = False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            headings.append(line[3:].strip())
    return headings


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_first_screen_keeps_its_two_commands_then_the_three_ways_in() -> None:
    """The demo command and the test command come first, then the three short paths (the
    page, cron, a script), each linking to its reference section, all before the contents."""
    demo = README.index("batcher run --sandbox samples/contacts.csv")
    tests = README.index("python -m pytest -q")
    ways = README.index("## Three ways in")
    contents = README.index("## Contents")
    assert demo < tests < ways < contents
    opening = README[ways:contents]
    page, cron, script = (opening.index(f"**{name}**") for name in ("The page", "Cron", "A script"))
    assert page < cron < script
    for link in ("(#the-web-page)", "(#from-cron)", "(#from-python)"):
        assert link in opening


def test_the_contents_link_every_section() -> None:
    """Every `##` section of the README is linked from its contents list."""
    contents = README.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    missing = [h for h in _sections() if h != "Contents" and f"(#{_anchor(h)})" not in contents]
    assert not missing, f"not in the contents: {missing}"


def test_the_from_python_example_runs_as_written(tmp_path: Path) -> None:
    """The first Python block of "From Python", run as a script in an empty folder, plans,
    applies and undoes its rows on the embedded sandbox and prints each row's result."""
    section = README.split("## From Python\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "would send 1 request(s)"
    assert lines[1] == "1 success pQ8sV2nL4xR7tY1wZ3bK ['spring', 'vip'] ann@example.com"
    assert lines[3] == "3 invalid not-an-id None cy@example.com"
    assert lines[4] == "{'invalid': 1, 'success': 2} exit code 0"
    assert lines[5] == "undone: {'nothing_to_undo': 1, 'success': 2}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".batcher", "example.py"]
