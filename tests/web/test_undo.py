"""Undo of a finished run from the page: its plan first, then the undo as a run."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from pathlib import Path

import pytest

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.loading import InputOptions
from batcher.sandbox import DEFAULT_LOCATION, Sandbox, SandboxConfig
from batcher.state import runs_in
from batcher.support.stopping import Stop
from batcher.web import WebOptions
from tests.web.helpers import SAMPLES, Page, page_for, settings_for

CONTACTS = (SAMPLES / "contacts.csv").read_bytes()
_RUN_NAME = re.compile(r'name="run" value="(run-[^"]+\.sqlite)"')


async def finished_run(page: Page, state_dir: Path) -> str:
    """Upload the sample, run it; the state file's name of the finished run."""
    status, text, upload_id = await page.upload("contacts.csv", CONTACTS)
    assert status == 200, text
    operation = {"upload": upload_id, "action": "add", "tags": "vip,newsletter"}
    status, text = await page.post("/plan", operation)
    assert status == 200, text
    status, text = await page.post("/run", operation)
    assert status == 200, text
    snap = await page.wait_for_run()
    assert snap["state"] == "finished", snap
    (state_file,) = state_files(state_dir)
    return state_file.name


def state_files(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob("run-*.sqlite"))


def set_meta(state_file: Path, key: str, value: str) -> None:
    db = sqlite3.connect(state_file)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    db.close()


async def test_undo_shows_its_plan_then_runs_and_its_report_downloads(tmp_path: Path) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        run_name = await finished_run(page, state_dir)
        status, text = await page.get("/")
        assert _RUN_NAME.findall(text) == [run_name]
        assert 'action="/undo"' in text  # the finished run's Undo is a form, enabled

        status, text = await page.post("/undo", {"run": run_name})
        assert status == 200, text
        assert 'id="undo-plan"' in text
        for part in ("undo-rows", "undo-operations", "undo-requests", "undo-locations"):
            assert f'id="{part}"' in text
        assert "rows with nothing to undo" in text
        assert 'id="undo-sandbox"' in text  # the sandbox's limit is said
        assert 'id="undo-run-button"' in text
        assert len(state_files(state_dir)) == 1, "the plan keeps no state"

        status, text = await page.post("/undo/run", {"run": run_name})
        assert status == 200, text
        snap = await page.wait_for_run()
        assert snap["state"] == "finished", snap
        assert snap["operation"].startswith("undo the changes in ")
        assert snap["requests_done"] == snap["requests_planned"] > 0

        status, text = await page.get("/")
        assert f'href="/runs/{snap["id"]}/report.csv"' in text
        assert "undo of contacts-report.csv" in text  # the undo is in the runs list
        async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            assert "contacts-report-undo.csv" in response.headers["Content-Disposition"]
            report = await response.text()
        lines = list(csv.DictReader(io.StringIO(report)))
        assert {"undoes_row", "undo", "status"} <= set(lines[0])
        assert any(line["undo"].startswith("nothing to undo") for line in lines)
        assert any(line["action"] == "remove" for line in lines)


async def test_undo_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        run_name = await finished_run(page, state_dir)
        for path in ("/undo", "/undo/run"):
            status, text = await page.post(path, {"run": run_name}, csrf="")
            assert status == 403, text
            assert "CSRF" in text
            status, text = await page.post(path, {"run": run_name}, csrf="wrong")
            assert status == 403, text
        assert len(state_files(state_dir)) == 1, "nothing ran"
        assert (await page.progress())["operation"].startswith("add")


async def test_undo_of_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        run_name = await finished_run(page, state_dir)
        state_file = state_dir / run_name

        set_meta(state_file, "state", "ready")
        status, text = await page.get("/")
        assert 'action="/undo"' not in text  # the button is disabled, saying why
        assert "unfinished: only a finished run can be undone" in text
        for path in ("/undo", "/undo/run"):
            status, text = await page.post(path, {"run": run_name})
            assert status == 400, text
            assert re.search(r'class="error"[^>]*>that run is unfinished: only a finished', text)

        set_meta(state_file, "state", "finished")
        set_meta(state_file, "report", str(tmp_path / "gone-report.csv"))
        status, text = await page.post("/undo", {"run": run_name})
        assert status == 200, "the undo reads the run's records, not its report file"
        assert 'id="undo-plan"' in text

        status, text = await page.post("/undo", {"run": "run-../../etc/passwd"})
        assert status == 400, text
        assert "not in the state directory" in text
        assert len(state_files(state_dir)) == 1, "nothing ran"


async def test_undo_from_the_page_acts_on_the_runs_own_records_not_its_report_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs wrote one report path (vip, then newsletter): the page's Undo of the vip run
    removes vip, never newsletter; a resumed run is shown with its final report and all its
    rows to undo."""
    ids = [f"contact{n:013d}" for n in range(30)]
    source = tmp_path / "in.csv"
    source.write_text("contact_id\n" + "".join(f"{c}\n" for c in ids), encoding="utf-8")
    state_dir = tmp_path / ".batcher"
    async with Sandbox(SandboxConfig(rate=None)) as sandbox:
        monkeypatch.setenv("BATCHER_TOKEN", sandbox.token)
        settings = settings_for(
            state_dir,
            **{
                "api.base_url": sandbox.url,
                "api.location_id": DEFAULT_LOCATION,
                "batch.size": 10,
                "limits.concurrency": 1,
                "retry.initial_backoff_s": 0.0,
                "retry.max_backoff_s": 0.0,
            },
        )
        stop = Stop()

        def progress(done: int, planned: int) -> None:
            if done == 1:
                stop.request("stopped by the test")

        def job(tags: str, report: str) -> Job:
            options = InputOptions(action="add", tags=(tags,), default_location_id=DEFAULT_LOCATION)
            return Job(input_path=source, input=options, report_path=tmp_path / report)

        vip = await execute(settings, job("vip", "report.csv"))
        stopped = await execute(
            settings, job("newsletter", "a.csv"), on_progress=progress, stop=stop
        )
        resumed = await execute(settings, job("newsletter", "report.csv"))
        assert (vip.exit_code, stopped.exit_code, resumed.exit_code) == (0, 3, 0)
        by_operation = {info.operation: info.path.name for info in runs_in(state_dir)}
        vip_run = by_operation[vip.operation]
        newsletter_run = by_operation[resumed.operation]

        async with page_for(settings, WebOptions(sandbox=False)) as page:
            await page.get("/")  # its CSRF token
            status, text = await page.post("/undo", {"run": newsletter_run})
            assert status == 200, text
            assert "<code>report.csv</code>" in text  # the final report, not a.csv
            assert re.search(r'id="undo-rows">30 of\s+30<', text)

            status, text = await page.post("/undo/run", {"run": vip_run})
            assert status == 200, text
            snap = await page.wait_for_run()
            assert snap["state"] == "finished", snap

            status, text = await page.get("/")
            assert "that run was undone on " in text  # its Undo is now disabled, saying why

        assert {frozenset(sandbox.universe.tags(c) or ()) for c in ids} == {
            frozenset({"newsletter"})
        }
