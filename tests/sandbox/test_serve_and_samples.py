"""serve() for the CLI, and the bundled samples: reproducible and in agreement with the fixture."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import aiohttp
import openpyxl
import pytest

from batcher.sandbox import Sandbox, SandboxConfig, Universe, serve

from .helpers import HEADERS, LOCATION

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FOREIGN_LOCATION = "otherLocation0000002"


async def test_serve_announces_its_url_and_runs_until_cancelled() -> None:
    announced: asyncio.Queue[str] = asyncio.Queue()
    server = asyncio.create_task(serve(SandboxConfig(), announced.put_nowait))
    url = await asyncio.wait_for(announced.get(), 5)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/contacts/bulk/tags/update/add",
            json={"contacts": [], "tags": [], "locationId": LOCATION},
            headers=HEADERS,
        ) as response:
            assert response.status == 201
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/_sandbox/stats")


def test_the_generator_reproduces_the_committed_samples(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SAMPLES / "generate.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    names = ["sandbox-fixture.json", "contacts.csv", "contacts.xlsx", "highlevel_export.csv"]
    for name in names:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe.from_fixture(SAMPLES / "sandbox-fixture.json")


def test_contacts_csv_shows_every_kind_of_row(universe: Universe) -> None:
    text = (SAMPLES / "contacts.csv").read_text(encoding="utf-8")
    assert "\n\n" in text  # a blank line
    rows = list(csv.DictReader(line for line in text.splitlines() if line))
    assert len(rows) == 3000
    ids = [row["contact_id"].strip() for row in rows]
    live = [i for i in ids if universe.location_of(i) == LOCATION]
    assert len(live) > 2900
    assert sum("vip" in (universe.tags(i) or ()) for i in live) > 100
    assert sum(universe.is_deleted(i) for i in ids) >= 3
    assert sum(universe.location_of(i) == FOREIGN_LOCATION for i in ids) >= 3
    malformed = [i for i in ids if len(i) != 20]
    assert "" in malformed
    assert any(0 < len(i) < 20 for i in malformed)
    assert any(len(i) > 20 for i in malformed)
    assert sum(row["contact_id"] != row["contact_id"].strip() for row in rows) >= 2
    assert len(live) - len(set(live)) >= 2  # exact duplicates
    assert set(ids) - set(malformed) <= {
        i for i in ids if universe.location_of(i) is not None or universe.is_deleted(i)
    }


def test_contacts_xlsx_agrees_with_the_fixture(universe: Universe) -> None:
    book = openpyxl.load_workbook(SAMPLES / "contacts.xlsx", read_only=True)
    header, *rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    assert header == ["Contact ID", "Tags", "Action", "Email"]
    assert len(rows) == 200
    assert {row[2] for row in rows} == {"add", "remove", "delete"}
    assert all(universe.location_of(str(r[0])) or universe.is_deleted(str(r[0])) for r in rows)
    removals = [r for r in rows if r[2] == "remove" and universe.location_of(str(r[0])) == LOCATION]
    assert all(set(str(r[1]).split(",")) & set(universe.tags(str(r[0])) or ()) for r in removals)


def test_highlevel_export_carries_the_fixture_tags(universe: Universe) -> None:
    with (SAMPLES / "highlevel_export.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == [
        "Contact Id", "First Name", "Last Name", "Business Name", "Company Name", "Phone",
        "Email", "Created", "Last Activity", "Tags",
    ]  # fmt: skip
    assert len(rows) == 500
    for row in rows:
        tags = universe.tags(row["Contact Id"])
        assert tags is not None
        assert row["Tags"] == ",".join(tags)
    assert any("," in row["Tags"] for row in rows)


async def test_out_of_the_box_the_documentation_s_example_location_is_accepted() -> None:
    """The seed page's curl example (with removeAllTags as a JSON boolean) gets a 201 from a
    sandbox with no configuration at all, so a newcomer's first request works."""
    body = {
        "contacts": ["qFSqySFkVvNzOSqgGqFi", "abcdef"],
        "tags": ["tag-1", "tag-2"],
        "locationId": "asdrwHvLUxlfw5SqKVCN",
        "removeAllTags": False,
    }
    headers = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
    async with (
        Sandbox() as sandbox,
        aiohttp.ClientSession() as session,
        session.post(
            f"{sandbox.url}/contacts/bulk/tags/update/add", json=body, headers=headers
        ) as answer,
    ):
        assert answer.status == 201
        assert (await answer.json())["errorCount"] == 1
