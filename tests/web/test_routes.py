"""The page's routes, driven by aiohttp's test client against the embedded sandbox."""

from __future__ import annotations

import csv
import io
import re
import stat
from pathlib import Path

import pytest
import xlsxwriter
from click.testing import CliRunner

from batcher.cli import main
from batcher.sandbox import Sandbox, SandboxConfig
from batcher.state import StateLock
from batcher.web import WebOptions
from tests.web.helpers import SAMPLES, Page, page_for, settings_for

CONTACTS = (SAMPLES / "contacts.csv").read_bytes()
TOKEN = "tok-Made-Up-9f8e7d6c5b4a3210zyxw"


def input_rows(data: bytes) -> int:
    """Data rows as the loader counts them: blank lines (and lines of empty cells) are not rows."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    next(reader)
    return sum(1 for cells in reader if any(cell.strip() for cell in cells))


def uploads_in(state_dir: Path) -> list[Path]:
    folder = state_dir / "uploads"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def state_files(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob("run-*.sqlite")) if state_dir.is_dir() else []


async def plan_and_run(page: Page, upload_id: str, **fields: str) -> dict[str, object]:
    operation = {"upload": upload_id, "action": "add", "tags": "vip,newsletter", **fields}
    status, text = await page.post("/plan", operation)
    assert status == 200, text
    assert 'id="run-button"' in text
    status, text = await page.post("/run", operation)
    assert status == 200, text
    return await page.wait_for_run()


async def test_upload_plan_run_and_download_the_report(tmp_path: Path) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        status, text, upload_id = await page.upload("contacts.csv", CONTACTS)
        assert status == 200, text
        assert "Upload saved" in text
        assert "<code>contact_id</code>" in text  # the detected id column is shown
        uploaded = state_dir / "uploads" / upload_id / "input.csv"  # a name of our own
        assert uploaded.read_bytes() == CONTACTS
        assert stat.S_IMODE(uploaded.stat().st_mode) == 0o600
        assert stat.S_IMODE(uploaded.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE((state_dir / "uploads").stat().st_mode) == 0o700

        operation = {"upload": upload_id, "action": "add", "tags": "vip,newsletter"}
        status, text = await page.post("/plan", operation)
        assert status == 200, text
        assert re.search(r"2,9\d\d rows: add \[&quot;vip&quot;, &quot;newsletter&quot;\]", text)
        assert 'id="plan-requests"' in text
        assert "at the rate limit" in text
        # How the file was read, and the distinct operations with their rows (Step 10).
        assert "Read as CSV, UTF-8 (valid throughout), delimiter &quot;,&quot; (sniffed)." in text
        assert re.search(
            r"<code>add \[&quot;newsletter&quot;, &quot;vip&quot;\]</code></td>"
            r"<td class='num'>2,9\d\d</td>",
            text,
        )
        assert 'id="invalid-rows"' in text  # the sample has invalid rows: the first are listed
        assert not state_files(state_dir), "a plan keeps no state"

        status, text = await page.post("/run", operation)
        assert status == 200, text
        snap = await page.wait_for_run()
        assert snap["state"] == "finished", snap
        assert snap["requests_done"] == snap["requests_planned"] > 0
        assert snap["counts"]["success"] > 0

        status, text = await page.get(f"/?upload={upload_id}")
        assert f'href="/runs/{snap["id"]}/report.csv"' in text
        async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            report = await response.text()
        lines = list(csv.DictReader(io.StringIO(report)))
        assert len(lines) == input_rows(CONTACTS)
        assert [int(line["row"]) for line in lines] == list(range(1, len(lines) + 1))
        assert {line["status"] for line in lines} >= {"success", "invalid"}

        async with page.client.get(f"/runs/{snap['id']}/report.xlsx") as response:
            assert response.status == 200
            assert (await response.read())[:2] == b"PK"  # a zip: the XLSX container

        # The run is in the state directory's list, finished, with its report.
        assert "state-finished" in text


async def test_an_excel_upload_runs_too(tmp_path: Path) -> None:
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        status, text, upload_id = await page.upload(
            "contacts.xlsx", (SAMPLES / "contacts.xlsx").read_bytes()
        )
        assert status == 200, text
        assert 'for="sheet"' in text  # Excel: the sheet can be chosen
        snap = await plan_and_run(page, upload_id)
        assert snap["state"] == "finished", snap


@pytest.mark.parametrize(
    ("name", "data", "expected", "code"),
    [
        ("contacts.pdf", b"%PDF-1.4", "not a CSV or Excel file", 400),
        ("../../etc/contacts.csv", CONTACTS, "path separator", 400),
        ("..\\contacts.csv", CONTACTS, "path separator", 400),
        ("old.xls", b"\xd0\xcf\x11\xe0", "open it in Excel and save it as .xlsx", 400),
        ("contacts.csv", b"", "the file is empty", 400),
        ("big.csv", b"contact_id\n" + b"g9Tx27DdxE3tn8SefKjA\n" * 60_000, "larger than", 413),
    ],
    ids=["not-csv", "path", "backslash", "xls", "empty", "too-large"],
)
async def test_a_bad_upload_is_refused_with_a_clear_message_and_nothing_sent(
    tmp_path: Path, name: str, data: bytes, expected: str, code: int
) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir, **{"serve.max_upload_mb": 1})) as page:
        status, text, _ = await page.upload(name, data)
        assert status == code
        error = re.search(r'<p class="error" role="alert" id="error"[^>]*>([^<]*)</p>', text)
        assert error is not None, text
        assert expected in error.group(1)
        assert "Traceback" not in text
        # Nothing kept, nothing started.
        assert not uploads_in(state_dir)
        assert not state_files(state_dir)
        assert (await page.progress())["state"] == "none"


async def test_a_code_page_upload_is_read_in_the_configured_encoding(tmp_path: Path) -> None:
    """A cp1251 file whose tags only that code page reads right is kept at upload, with a
    choice of the likely code pages showing each one's reading; the one chosen reads it (as
    input.encoding naming it does)."""
    data = "contact_id,tags,action\ng9Tx27DdxE3tn8SefKjA,клиент,add\n".encode("cp1251")
    async with page_for(settings_for(tmp_path / "a")) as page:
        status, text, upload_id = await page.upload("contacts.csv", data)
        assert status == 200, text
        assert 'id="column-problem"' in text
        assert "choose the encoding whose reading is right" in text
        assert "--encoding" not in text
        readings = dict(
            re.findall(r'name="encoding" value="([^"]+)"[^>]*> [^:]+: <q>([^<]*)', text)
        )
        assert readings["cp1251"] == "клиент"
        assert len(readings) > 1
        status, text = await page.post("/plan", {"upload": upload_id, "encoding": "cp1251"})
        assert status == 200, text
        assert "Read as CSV, cp1251 (as named)" in text
    settings = settings_for(tmp_path / "b", **{"input.encoding": "cp1251"})
    async with page_for(settings) as page:
        status, text, upload_id = await page.upload("contacts.csv", data)
        assert status == 200, text
        status, text = await page.post("/plan", {"upload": upload_id})
        assert status == 200, text
        assert "Read as CSV, cp1251 (as named)" in text
        assert "<code>add [&quot;клиент&quot;]</code>" in text


async def test_a_post_without_the_csrf_token_is_refused(tmp_path: Path) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        status, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        assert status == 200
        operation = {"upload": upload_id, "action": "add", "tags": "vip"}
        for token in ("", "forged"):
            status, text = await page.post("/run", operation, csrf=token)
            assert status == 403
            assert "CSRF" in text
            status, _, _ = await page.upload("contacts.csv", CONTACTS, csrf=token)
            assert status == 403
        # From another site, even with the token (a page that somehow learnt it):
        async with page.client.post(
            "/run",
            data={"csrf": page.csrf, **operation},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        ) as response:
            assert response.status == 403
        assert len(uploads_in(state_dir)) == 1
        assert not state_files(state_dir)


async def test_the_page_answers_only_to_loopback_names(tmp_path: Path) -> None:
    """A page elsewhere that rebinds its name to 127.0.0.1 cannot read this one."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        async with page.client.get("/", headers={"Host": "evil.example:8765"}) as response:
            assert response.status == 421
        async with page.client.get("/", headers={"Host": "localhost:8765"}) as response:
            assert response.status == 200


def test_serve_refuses_to_start_beyond_loopback_without_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAGE_PASSWORD", raising=False)
    monkeypatch.setenv("BATCHER_SERVE_PASSWORD_ENV", "PAGE_PASSWORD")
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("batcher: error: serve: binding 0.0.0.0 (not loopback) needs")


async def test_a_second_run_is_refused_while_another_holds_the_state_directory(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        _, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        lock = StateLock(state_dir)
        lock.acquire()  # as a CLI run in another process would
        try:
            operation = {"upload": upload_id, "action": "add", "tags": "vip"}
            for path in ("/plan", "/run"):
                status, text = await page.post(path, operation)
                assert status == 409
                assert "another batcher run" in text
                assert "is using this state directory" in text
        finally:
            lock.release()
        assert (await page.progress())["state"] == "none"


async def test_stop_asks_for_the_graceful_stop(tmp_path: Path) -> None:
    state_dir = tmp_path / ".batcher"
    # One request per 10 s: the run is still going when the stop comes.
    settings = settings_for(state_dir, **{"limits.requests_per_interval": 1, "batch.size": 100})
    async with page_for(settings) as page:
        _, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        operation = {"upload": upload_id, "action": "add", "tags": "vip"}
        status, _ = await page.post("/run", operation)
        assert status == 200
        status, _ = await page.post("/stop", {})
        assert status == 200
        snap = await page.wait_for_run()
        assert snap["state"] == "stopped", snap
        assert "stopped from the page" in snap["message"]
        assert snap["counts"]["pending"] > 0
        async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
            lines = list(csv.DictReader(io.StringIO(await response.text())))
        assert len(lines) == input_rows(CONTACTS)


async def test_the_progress_stream_ends_with_done(tmp_path: Path) -> None:
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        _, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        await page.post("/run", {"upload": upload_id, "action": "add", "tags": "vip"})
        async with page.client.get("/events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            body = await response.text()
        assert "event: done" in body
        assert '"state": "finished"' in body


async def test_the_token_never_reaches_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real sends with a token from the environment, a refused token, and a file named after
    the token: no answer holds it."""
    monkeypatch.setenv("BATCHER_TOKEN", TOKEN)
    state_dir = tmp_path / ".batcher"
    for accepted in (TOKEN, "another-token-entirely"):
        async with Sandbox(SandboxConfig(token=accepted)) as sandbox:
            settings = settings_for(state_dir, **{"api.base_url": sandbox.url})
            async with page_for(settings, WebOptions()) as page:
                status, _, upload_id = await page.upload("contacts.csv", CONTACTS)
                assert status == 200
                snap = await plan_and_run(
                    page, upload_id, location_id="asdrwHvLUxlfw5SqKVCN", tags="vip"
                )
                if accepted == TOKEN:
                    assert snap["state"] == "finished", snap
                else:
                    assert snap["state"] == "stopped", snap
                    assert "BATCHER_TOKEN" in snap["message"]
                status, text, _ = await page.upload(f"{TOKEN}.csv", CONTACTS)
                assert status == 200
                await page.get("/")
                async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
                    page.seen.append(await response.text())
                for text in page.seen:
                    assert TOKEN.casefold() not in text.casefold()
                    assert TOKEN[:12].casefold() not in text.casefold()


async def test_a_report_keeps_a_non_ascii_file_name(tmp_path: Path) -> None:
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        status, _, upload_id = await page.upload("kontakte-ä.csv", CONTACTS)
        assert status == 200
        snap = await plan_and_run(page, upload_id)
        async with page.client.get(f"/runs/{snap['id']}/report.csv") as response:
            assert response.status == 200
            disposition = response.headers["Content-Disposition"]
        assert 'filename="kontakte-_-report.csv"' in disposition
        assert "filename*=UTF-8''kontakte-%C3%A4-report.csv" in disposition


async def test_an_undetected_id_column_is_chosen_on_the_page(tmp_path: Path) -> None:
    """A file whose id column is "Record" is kept at upload; the page says so in its own words
    (no command-line flag), lists the header to choose from, and the plan reads the choice."""
    data = b"Record,tags,action\ng9Tx27DdxE3tn8SefKjA,vip,add\n"
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        status, text, upload_id = await page.upload("records.csv", data)
        assert status == 200, text
        problem = re.search(r'id="column-problem"[^>]*>([^<]*)<', text)
        assert problem is not None, text
        assert "no contact id column" in problem.group(1)
        assert "choose it in the Contact id column list" in problem.group(1)
        assert "--id-column" not in text
        assert "--email-column" not in text
        assert re.search(r'<select id="id_column"[^>]*autofocus', text)
        assert '<option value="Record">Record</option>' in text
        status, text = await page.post("/plan", {"upload": upload_id, "id_column": "Record"})
        assert status == 200, text
        assert "<code>add [&quot;vip&quot;]</code>" in text
        assert '<option value="Record" selected>' in text


async def test_a_workbook_whose_first_sheet_is_not_data_lets_the_sheet_be_chosen(
    tmp_path: Path,
) -> None:
    """A workbook with an empty first sheet is kept; the page lists its visible sheets (not the
    hidden one) to choose from, and the plan reads the one chosen."""
    book = tmp_path / "book.xlsx"
    workbook = xlsxwriter.Workbook(str(book))
    workbook.add_worksheet("Notes")
    hidden = workbook.add_worksheet("Old")
    hidden.write_row(0, 0, ["contact_id", "tags"])
    hidden.hide()
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["contact_id", "tags", "action"])
    sheet.write_row(1, 0, ["g9Tx27DdxE3tn8SefKjA", "vip", "add"])
    workbook.close()
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        status, text, upload_id = await page.upload("book.xlsx", book.read_bytes())
        assert status == 200, text
        assert 'id="column-problem"' in text
        assert "is empty" in text
        sheets = re.findall(
            r'<option value="([^"]*)"[^>]*>[^<]*</option>', text.split('id="sheet"')[1]
        )
        assert sheets[:2] == ["Notes", "Contacts"]
        assert "Old" not in sheets
        status, text = await page.post(
            "/plan", {"upload": upload_id, "sheet": "Contacts", "action": "file"}
        )
        assert status == 200, text
        assert "Read as sheet &quot;Contacts&quot;, as chosen." in text
        assert '<option value="Contacts" selected>' in text
