"""The page's state directory is the operator's alone: trusted as `run` trusts it, downloads
that never follow a link, owner-only files, uploads and page reports that expire, odd names that
answer 4xx."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.domain.errors import UsageError
from batcher.web import WebOptions, create_app
from batcher.web.app import Page as AppPage
from tests.web.helpers import SAMPLES, Page, page_for, settings_for

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = (SAMPLES / "contacts.csv").read_bytes()
DAY = 86_400


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def finished_run(page: Page) -> str:
    """Upload the sample and run it on the page; the page run's id."""
    status, text, upload_id = await page.upload("contacts.csv", CONTACTS)
    assert status == 200, text
    operation = {"upload": upload_id, "action": "add", "tags": "vip"}
    status, text = await page.post("/run", operation)
    assert status == 200, text
    snap = await page.wait_for_run()
    assert snap["state"] == "finished", snap
    return str(snap["id"])


def foreign(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `path` another user's: chown as root, else pretend to be another uid."""
    if os.getuid() == 0:
        os.chown(path, 4242, 4242)
    else:
        real = os.getuid()
        monkeypatch.setattr("batcher.support.files.os.getuid", lambda: real + 1)


def test_a_state_directory_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` applies `run`'s trust check: another user's state directory is refused."""
    state_dir = tmp_path / ".batcher"
    state_dir.mkdir(mode=0o700)
    foreign(state_dir, monkeypatch)
    with pytest.raises(UsageError, match="state directory belongs to another user"):
        create_app(settings_for(state_dir), WebOptions(sandbox=True))


def test_serve_refuses_a_state_directory_anyone_may_write(tmp_path: Path) -> None:
    """`batcher serve` with a world-writable state directory: one line, exit 2, no address."""
    state_dir = tmp_path / ".batcher"
    state_dir.mkdir()
    state_dir.chmod(0o777)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATCHER_STATE_DIR": str(state_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "batcher", "serve", "--sandbox", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"batcher: error: {state_dir}: state directory is writable by anyone; fix it with "
        f"`chmod go-w {state_dir}`"
    ]


async def test_a_symlinked_report_is_never_served(tmp_path: Path) -> None:
    """A report replaced by a link (to a private file), a hard link, or a planted run.json
    naming another folder's file or a link to a folder: 404, the file's bytes never sent."""
    state_dir = tmp_path / ".batcher"
    private = tmp_path / "private.txt"
    private.write_text("someone's private file\n", encoding="utf-8")
    private.chmod(0o600)
    async with page_for(settings_for(state_dir)) as page:
        run_id = await finished_run(page)
        folder = state_dir / "web" / run_id
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        report = folder / record["report_csv"]
        async with page.client.get(f"/runs/{run_id}/report.csv") as response:
            assert response.status == 200

        report.unlink()
        report.symlink_to(private)
        async with page.client.get(f"/runs/{run_id}/report.csv") as response:
            assert response.status == 404
            assert "private file" not in await response.text()

        report.unlink()
        os.link(private, report)  # ours here, but not a file the page wrote: two links
        async with page.client.get(f"/runs/{run_id}/report.csv") as response:
            assert response.status == 404

        for name in ("../../../private.txt", "/etc/passwd", ".."):
            planted = {**record, "report_csv": name}
            (folder / "run.json").write_text(json.dumps(planted), encoding="utf-8")
            async with page.client.get(f"/runs/{run_id}/report.csv") as response:
                assert response.status == 404, name

        other = "fedcba9876543210"
        (state_dir / "web" / other).symlink_to(tmp_path)  # a run folder that is a link
        (tmp_path / "run.json").write_text(
            json.dumps({**record, "id": other, "report_csv": "private.txt"}), encoding="utf-8"
        )
        async with page.client.get(f"/runs/{other}/report.csv") as response:
            assert response.status == 404
            assert "private file" not in await response.text()


async def test_an_uploads_folder_that_is_a_link_is_not_written_through(tmp_path: Path) -> None:
    """`uploads` replaced by a link to elsewhere: the upload is refused, nothing lands there."""
    state_dir = tmp_path / ".batcher"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    async with page_for(settings_for(state_dir)) as page:
        (state_dir / "uploads").symlink_to(elsewhere)
        status, text, _ = await page.upload("contacts.csv", CONTACTS)
        assert status == 400
        assert "not a folder of your own" in text
    assert list(elsewhere.iterdir()) == []


async def test_every_file_the_page_writes_is_owner_only(tmp_path: Path, umask_022: None) -> None:
    """Under umask 022, the upload, the page's report copies, their summary.json, run.json and
    the run's state are all 600 (folders 700)."""
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        run_id = await finished_run(page)
    names = {p.name for p in (state_dir / "web" / run_id).iterdir()}
    assert {"contacts-report.csv", "contacts-report.xlsx", "contacts-report.summary.json"} <= names
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    assert len(files) >= 8
    assert {str(p.relative_to(state_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        str(p.relative_to(state_dir)): "0o600" for p in files
    }
    for folder in [state_dir, *(p for p in state_dir.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def age(folder: Path, meta: str, key: str, days: float) -> None:
    """Make the upload or page run in `folder` `days` days old."""
    path = folder / meta
    data = json.loads(path.read_text(encoding="utf-8"))
    data[key] = time.time() - days * DAY
    path.write_text(json.dumps(data), encoding="utf-8")


async def test_old_uploads_and_page_reports_are_pruned(tmp_path: Path) -> None:
    """Uploads and page runs older than state.keep_days go at the start and when an upload
    arrives; younger ones stay."""
    state_dir = tmp_path / ".batcher"
    settings = settings_for(state_dir, **{"state.keep_days": 10})
    async with page_for(settings) as page:
        run_id = await finished_run(page)
        _, _, young = await page.upload("contacts.csv", CONTACTS)
    uploads = sorted(p.name for p in (state_dir / "uploads").iterdir())
    old = next(name for name in uploads if name != young)
    age(state_dir / "uploads" / old, "upload.json", "uploaded", 11)
    age(state_dir / "web" / run_id, "run.json", "finished", 11)
    async with page_for(settings) as page:  # a new start
        assert [p.name for p in (state_dir / "uploads").iterdir()] == [young]
        assert list((state_dir / "web").iterdir()) == []
        age(state_dir / "uploads" / young, "upload.json", "uploaded", 10.5)
        _, _, newest = await page.upload("contacts.csv", CONTACTS)
        assert [p.name for p in (state_dir / "uploads").iterdir()] == [newest]
        status, text = await page.post("/plan", {"upload": young, "action": "add"})
        assert status == 404
        assert "upload the file again" in text


async def test_uploads_past_the_total_cap_are_refused(tmp_path: Path) -> None:
    """All uploads together may not pass serve.max_total_upload_mb: the one that would is
    refused (413) with a message naming the key, and nothing of it is kept."""
    half = b"contact_id\n" + b"g9Tx27DdxE3tn8SefKjA\n" * 30_000  # 630,011 bytes, 0.6 MiB
    settings = settings_for(
        tmp_path / ".batcher", **{"serve.max_upload_mb": 1, "serve.max_total_upload_mb": 1}
    )
    async with page_for(settings) as page:
        status, _, first = await page.upload("one.csv", half)
        assert status == 200
        status, text, _ = await page.upload("two.csv", half)
        assert status == 413
        assert "serve.max_total_upload_mb" in text
    assert [p.name for p in (tmp_path / ".batcher" / "uploads").iterdir()] == [first]


@pytest.mark.parametrize(
    ("name", "code", "expected"),
    [
        ("con\x00tacts.csv", 400, "could not be read"),
        ("con\x1btacts.csv", 400, "control character"),
        ("é" * 150 + ".csv", 200, "é" * 150 + ".csv"),
        ("\u202egnp.csv", 200, "\\u202egnp.csv"),
    ],
    ids=["nul", "escape", "150-e-acute", "bidi"],
)
async def test_odd_file_names_answer_4xx_or_are_shown_escaped(
    tmp_path: Path, name: str, code: int, expected: str
) -> None:
    """A NUL or a control character: 400 with a message; a name too long for the file system
    is kept under our own name; a bidi control is shown escaped, never raw."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        status, text, upload_id = await page.upload(name, CONTACTS)
        assert status == code, text
        assert expected in text
        assert "\u202e" not in text
        assert "Traceback" not in text
        if code != 200:
            return
        assert re.search(r'id="upload-name">([^<]*)<', text).group(1) == expected  # type: ignore[union-attr]
        run_id = (await plan_and_run(page, upload_id))["id"]
        async with page.client.get(f"/runs/{run_id}/report.csv") as response:
            assert response.status == 200
            disposition = response.headers["Content-Disposition"]
        assert "%E2%80%AE" not in disposition  # the bidi control is not in the saved name


async def plan_and_run(page: Page, upload_id: str) -> dict[str, object]:
    status, text = await page.post("/run", {"upload": upload_id, "action": "add", "tags": "v"})
    assert status == 200, text
    return await page.wait_for_run()


@pytest.mark.parametrize("path", ["/plan", "/run"])
async def test_an_unknown_upload_with_a_valid_csrf_token_is_a_404(
    tmp_path: Path, path: str
) -> None:
    """A form naming an upload that is not there: 404 with a message, not a 500."""
    async with page_for(settings_for(tmp_path / ".batcher")) as page:
        await page.get("/")
        status, text = await page.post(path, {"upload": "0123456789abcdef", "action": "add"})
        assert status == 404
        assert "that upload is not in the state directory" in text
        status, text = await page.post(path, {"upload": "../../etc", "action": "add"})
        assert status == 404


async def test_a_full_disk_while_storing_an_upload_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while an upload is written: 507 naming the state directory's device, nothing
    kept, no crash file."""
    state_dir = tmp_path / ".batcher"

    def no_space(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    async with page_for(settings_for(state_dir)) as page:
        await page.get("/")
        monkeypatch.setattr("batcher.web.uploads.os.write", no_space)
        status, text, _ = await page.upload("contacts.csv", CONTACTS)
        assert status == 507
        assert f"no space left on the device holding the state directory {state_dir}" in text
    assert list((state_dir / "uploads").iterdir()) == []
    assert not list(state_dir.glob("crash-*"))


async def test_a_running_server_prunes_daily_but_never_the_current_runs_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While serving, old uploads keep going (the daily pass, made frequent here), but the
    upload of the run the page shows stays however old."""
    state_dir = tmp_path / ".batcher"
    settings = settings_for(state_dir, **{"state.keep_days": 10})
    loop = asyncio.get_running_loop()
    passed = asyncio.Event()
    prune = AppPage.prune

    def noted(self: AppPage, now: float | None = None) -> None:
        prune(self, now)
        loop.call_soon_threadsafe(passed.set)  # prune runs in a worker thread

    monkeypatch.setattr(AppPage, "prune", noted)
    monkeypatch.setattr("batcher.web.app.PRUNE_EVERY_S", 0.01)
    async with page_for(settings) as page:
        await finished_run(page)
        (used,) = (p.name for p in (state_dir / "uploads").iterdir())
        _, _, other = await page.upload("contacts.csv", CONTACTS)
        for upload in (used, other):
            age(state_dir / "uploads" / upload, "upload.json", "uploaded", 11)
        async with asyncio.timeout(30):  # a bound, not a duration asserted
            for _ in range(2):  # the second pass began after the ageing
                passed.clear()
                await passed.wait()
        assert [p.name for p in (state_dir / "uploads").iterdir()] == [used]
