"""The CSV report is offered the moment it is complete; the XLSX copy comes after, in the
background, and the page takes new plans meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import batcher.web.runs
from tests.web.helpers import SAMPLES, page_for, settings_for

CONTACTS = (SAMPLES / "contacts.csv").read_bytes()


def gated(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The XLSX writer held at a gate until the returned event is set."""
    gate = threading.Event()
    real: Callable[..., None] = batcher.web.runs.export_report

    def held(*args: Any, **kwargs: Any) -> None:
        assert gate.wait(60), "the test never opened the gate"
        real(*args, **kwargs)

    monkeypatch.setattr(batcher.web.runs, "export_report", held)
    return gate


async def test_the_csv_is_offered_and_plans_go_while_the_xlsx_copy_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the XLSX writer held: the run is finished, the CSV downloads, the XLSX does not
    exist yet, the page says it is being written and a new plan is shown (not refused); once
    the writer goes on, the XLSX link appears."""
    gate = gated(monkeypatch)
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        _, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        await page.post("/run", {"upload": upload_id, "action": "add", "tags": "vip"})
        snap = await page.wait_for_run(copy=False)
        assert snap["state"] == "finished", snap
        assert snap["xlsx"] == "writing"
        async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
            assert response.status == 200
            assert (await response.text()).startswith("row,")
        async with page.client.get(f"/runs/{snap['id']}/report.xlsx") as response:
            assert response.status == 404
        _, text = await page.get(f"/?upload={upload_id}")
        assert 'id="report-csv"' in text
        assert 'id="xlsx-pending"' in text
        assert 'data-xlsx="writing"' in text
        status, text = await page.post(
            "/plan", {"upload": upload_id, "action": "remove", "tags": "vip"}
        )
        assert status == 200, text
        assert 'id="plan-summary"' in text
        assert "data-after-run" not in text  # Start is not held back either

        gate.set()
        async with asyncio.timeout(60):
            while True:
                if (await page.progress())["xlsx"] == "ready":
                    break
                await asyncio.sleep(0.05)
        async with page.client.get(f"/runs/{snap['id']}/report.xlsx") as response:
            assert response.status == 200
            assert (await response.read()).startswith(b"PK")
        _, text = await page.get(f"/?upload={upload_id}")
        assert 'id="report-xlsx"' in text
