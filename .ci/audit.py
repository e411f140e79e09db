"""CI's audit: every installed distribution against the known advisories; exit 1 on any.

`.ci/run` runs it in its fresh virtual environment (`python .ci/audit.py`); tests/test_audit.py
runs the same code against a known-vulnerable pin. pip-audit cannot run on this machine: its PyPI
service asks for each release's JSON, which this machine's route to PyPI answers 404, and OSV and
ecosyste.ms do not resolve. So each installed (name, version) is looked up in three places:

1. PyPI's JSON of that release (`/pypi/NAME/VERSION/json`): its `vulnerabilities` are PyPI's
   advisories (the PYSEC/OSV data pip-audit reads) for exactly that version, where it is served;
2. else PyPI's project JSON (`/pypi/NAME/json`), whose `vulnerabilities` are those of the newest
   release: used when the installed version is the newest (a fresh venv installs the newest),
   otherwise the version is listed as not audited (held back by another's upper bound);
3. and always `.ci/advisories.json`: the advisories this project answered with a dependency floor
   (pyproject.toml), checked offline, so that a floor lowered again or a pin below it fails
   whatever PyPI serves. Every version below an advisory's `fixed_in` counts as affected (the
   floors are set past the fix, so the few older versions it may not affect do not matter).

A withdrawn advisory is ignored. Needs only the standard library and `packaging`.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

PYPI = "https://pypi.org/pypi"
KNOWN = Path(__file__).with_name("advisories.json")
# This project (another project of that name is on PyPI).
SELF = "batcher"

# A JSON document of PyPI by its path under /pypi ("aiohttp/json", "aiohttp/3.14.3/json"), or
# None when PyPI answers 404.
Fetch = Callable[[str], dict[str, Any] | None]


@dataclass
class Findings:
    vulnerable: list[str] = field(default_factory=list)
    unaudited: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            *(f"not audited: {line}" for line in self.unaudited),
            *(f"VULNERABLE: {line}" for line in self.vulnerable),
            f"audited against PyPI's advisories and {KNOWN.name}; "
            f"{len(self.vulnerable)} known vulnerabilities",
        ]


def fetch_pypi(path: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{PYPI}/{path}", timeout=60) as answer:
            document: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    return document


def installed() -> list[tuple[str, str]]:
    """Every distribution installed beside this Python, by canonical name, but this project."""
    found = {(canonicalize_name(d.metadata["Name"]), d.version) for d in distributions()}
    return sorted((name, version) for name, version in found if name != SELF)


def known_advisories(path: Path = KNOWN) -> list[dict[str, str]]:
    advisories: list[dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return advisories


def _published(advisories: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (str(a["id"]), ", ".join(a.get("fixed_in") or []) or "no fix yet")
        for a in advisories
        if not a.get("withdrawn")
    ]


def audit(
    dists: Iterable[tuple[str, str]], fetch: Fetch, known: Iterable[dict[str, str]]
) -> Findings:
    """What the advisories say of `dists` ((canonical name, version) pairs)."""
    findings = Findings()
    floors = list(known)
    for name, version in dists:
        found: dict[str, str] = {}
        for advisory in floors:
            if canonicalize_name(advisory["package"]) == name and Version(version) < Version(
                advisory["fixed_in"]
            ):
                found[advisory["id"]] = advisory["fixed_in"]
        release = fetch(f"{name}/{version}/json")
        if release is not None:
            found.update(_published(release.get("vulnerabilities") or []))
        else:
            project = fetch(f"{name}/json")
            if project is None:
                findings.unaudited.append(f"{name} {version} (not on PyPI)")
            elif Version(project["info"]["version"]) != Version(version):
                newest = project["info"]["version"]
                findings.unaudited.append(f"{name} {version} (newest is {newest})")
            else:
                found.update(_published(project.get("vulnerabilities") or []))
        findings.vulnerable.extend(
            f"{name} {version}: {advisory} (fixed in: {fixed})"
            for advisory, fixed in sorted(found.items())
        )
    return findings


def run(
    dists: Iterable[tuple[str, str]],
    fetch: Fetch,
    known: Iterable[dict[str, str]],
    write: Callable[[str], None] = print,
) -> int:
    """Audit, write the findings, and give CI's exit status: 1 on any known vulnerability."""
    findings = audit(dists, fetch, known)
    for line in findings.lines():
        write(line)
    return 1 if findings.vulnerable else 0


if __name__ == "__main__":
    sys.exit(run(installed(), fetch_pypi, known_advisories()))
