"""The page in a real headless browser: Chromium from the OS packages, driven by Selenium.

Nothing is downloaded: Selenium is given the OS's `chromium` and `chromedriver` (apt packages
`chromium` and `chromium-driver`; `.ci/run` installs them). Without them the test is skipped, so
a developer without a browser can still run the suite.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

import batcher.web.runs
from batcher.web import WebOptions, create_app
from batcher.web.connections import serving as serving_app
from tests.web.helpers import SAMPLES, SECRET, settings_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT_COPY = ROOT / "benchmarks" / "out" / "web-after-run.png"

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        f"the browser test needs {CHROMIUM} and {CHROMEDRIVER} "
        "(apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="the browser test needs selenium (pip install -e '.[test]')"
)
from selenium.common.exceptions import (  # noqa: E402  (after the skip checks)
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@contextmanager
def serving(tmp_path: Path, per_second: int = 20) -> Iterator[str]:
    """`batcher serve --sandbox` in a fresh working directory, on a free port; the address it
    prints, with its start secret. Requests paced at `per_second`."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BATCHER_BATCH_SIZE": "50",
        "BATCHER_LIMITS_REQUESTS_PER_INTERVAL": str(per_second),
        "BATCHER_LIMITS_INTERVAL_MS": "1000",
    }
    env.pop("BATCHER_TOKEN", None)
    log = tmp_path / "serve.log"
    with (
        log.open("a", encoding="utf-8") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "batcher", "serve", "--sandbox", "--port", "0"],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as child,
    ):
        try:
            assert child.stdout is not None
            url = child.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), log.read_text(encoding="utf-8")
            yield url
        finally:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    # Stopped like Ctrl-C: one line to say where it was, no traceback.
    assert "Traceback" not in log.read_text(encoding="utf-8")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """60 requests paced at 20 per second: a few seconds of live progress to watch."""
    with serving(tmp_path) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, until: Callable[[Any], Any], seconds: float = 60) -> Any:
    """Until `until` holds; an element that vanished because the page moved on is looked up
    again (the page goes to the finished run by itself)."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=ignored).until(
        until
    )


def focused(driver: Any) -> Any:
    """The element with the focus, once the page has given it: a browser applies `autofocus`
    when it next renders, a moment after the element is in the page (asked at once, the focus
    was now and then still on the body)."""
    return wait(
        driver,
        lambda d: (element := d.switch_to.active_element).tag_name.lower() != "body" and element,
    )


def test_upload_plan_run_watch_and_download_in_a_real_browser(
    server: str, browser: Any, tmp_path: Path
) -> None:
    source = SAMPLES / "contacts.csv"
    browser.get(server.partition("?")[0])  # without the start secret: the login page
    assert browser.find_elements(By.ID, "login-form")
    browser.get(server)  # the address `batcher serve` printed, with its start secret...
    assert "token=" in server
    assert "token=" not in browser.current_url  # ...taken out of the address bar and history
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] not in server  # a session, not the secret
    assert browser.title.startswith("batcher")
    # Every control has a label (the page's accessibility floor).
    for control in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select"):
        labelled = browser.find_elements(
            By.CSS_SELECTOR, f"label[for='{control.get_attribute('id')}']"
        )
        assert labelled or control.find_elements(By.XPATH, "ancestor::label"), control

    browser.find_element(By.ID, "file").send_keys(str(source))
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, lambda d: d.find_element(By.ID, "upload-name").text == "contacts.csv")

    browser.find_element(By.CSS_SELECTOR, "input[name=action][value=add]").click()
    browser.find_element(By.ID, "tags").send_keys("vip,newsletter")
    browser.find_element(By.ID, "plan-button").click()
    summary = wait(browser, lambda d: d.find_element(By.ID, "plan-summary")).text
    assert "rows: add" in summary
    assert "60 requests" in browser.find_element(By.ID, "plan-requests").text
    assert browser.find_elements(By.CSS_SELECTOR, "#invalid-rows tbody tr")
    # The preview: the first rows as batcher reads them, before anything is sent.
    first = browser.find_elements(By.CSS_SELECTOR, "#first-rows tbody tr")
    assert len(first) == 5
    ids = next(csv.reader(source.read_text(encoding="utf-8-sig").splitlines()[1:2]))
    cells = [cell.text for cell in first[0].find_elements(By.TAG_NAME, "td")]
    assert cells[1] == ids[0].strip()
    assert cells[2:4] == ["add", "vip, newsletter"]
    assert cells[5] == "to send"

    browser.find_element(By.ID, "run-button").click()
    first_state = wait(
        browser, lambda d: d.find_element(By.ID, "progress").get_attribute("data-state")
    )
    seen: set[str] = set()

    def finished(driver: Any) -> bool:
        text = driver.find_element(By.ID, "progress-text").text
        seen.add(text)
        # The server's page of the finished run (the live page also says "finished" for a
        # moment, before it moves on): the one with the report's link.
        state = driver.find_element(By.ID, "progress").get_attribute("data-state")
        return state == "finished" and bool(driver.find_elements(By.ID, "report-csv"))

    wait(browser, finished)
    bar = browser.find_element(By.ID, "bar")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "60"
    assert browser.find_element(By.ID, "progress-text").text.startswith(
        "finished: 60 of 60 requests"
    )
    # At 20 requests a second the run takes 3 s: the page usually opens on it running and shows
    # the live numbers of the event stream (tests/web/test_routes.py checks the stream itself);
    # on a loaded machine the browser may only get there once it has finished.
    assert first_state in ("running", "finished")
    assert "run=" in browser.current_url
    counts = {
        cell.get_attribute("data-status"): int(cell.text.replace(",", ""))
        for cell in browser.find_elements(By.CSS_SELECTOR, "#run-counts td")
    }
    assert counts["success"] > 0

    # The page after the run, as a person sees it: the whole page, top to bottom.
    browser.execute_script("window.scrollTo(0, 0)")
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    picture = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    shot = tmp_path / "after-run.png"
    shot.write_bytes(base64.b64decode(picture["data"]))
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)

    browser.find_element(By.ID, "report-csv").click()
    deadline = time.monotonic() + 30
    report = browser.downloads / "contacts-report.csv"
    while not report.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert report.is_file(), list(browser.downloads.iterdir())
    lines = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8"))))
    data = source.read_text(encoding="utf-8-sig").splitlines()[1:]
    rows = [line for line in csv.reader(data) if any(cell.strip() for cell in line)]
    assert len(lines) == len(rows)
    assert [int(line["row"]) for line in lines] == list(range(1, len(rows) + 1))
    assert sum(line["status"] == "success" for line in lines) == counts["success"]


def upload_and_choose(driver: Any, source: Path, action: str, tags: str) -> None:
    """Upload `source` on the page open in `driver`, then choose `action` and type `tags`."""
    driver.find_element(By.ID, "file").send_keys(str(source))
    driver.find_element(By.ID, "upload-button").click()
    wait(driver, lambda d: d.find_element(By.ID, "upload-name").text == source.name)
    driver.find_element(By.CSS_SELECTOR, f"input[name=action][value={action}]").click()
    tags_field = driver.find_element(By.ID, "tags")
    tags_field.clear()
    tags_field.send_keys(tags)


def test_a_run_ending_in_one_tab_leaves_another_tab_mid_edit_alone(
    tmp_path: Path, browser: Any
) -> None:
    """Tab B, editing another upload while tab A's run goes on, keeps its file, tags and
    action when A's run ends; only the run's card changes there."""
    other = tmp_path / "other.csv"
    shutil.copyfile(SAMPLES / "contacts.csv", other)
    # 60 requests at 4 a second: 15 s, time for tab B to upload and type while A's run goes on.
    with serving(tmp_path, per_second=4) as url:
        browser.get(url)
        tab_a = browser.current_window_handle
        upload_and_choose(browser, SAMPLES / "contacts.csv", "add", "vip")
        browser.find_element(By.ID, "plan-button").click()
        wait(browser, lambda d: d.find_element(By.ID, "run-button").is_enabled())
        browser.find_element(By.ID, "run-button").click()
        wait(browser, lambda d: d.find_element(By.ID, "progress"))

        browser.switch_to.new_window("tab")
        browser.get(url.partition("?")[0])
        upload_and_choose(browser, other, "remove", "my-own-tags")
        address = browser.current_url
        run_id = browser.find_element(By.ID, "progress").get_attribute("data-run")
        # B's copy of the run's card goes from running to finished by itself...
        wait(
            browser,
            lambda d: (
                d.find_element(By.ID, "progress").get_attribute("data-state") == "finished"
                and d.find_elements(By.ID, "report-csv")
            ),
        )
        # ...and nothing else on B moved: its file, its action, its tags, its address.
        assert browser.find_element(By.ID, "progress").get_attribute("data-run") == run_id
        assert browser.current_url == address
        assert browser.find_element(By.ID, "upload-name").text == "other.csv"
        assert browser.find_element(
            By.CSS_SELECTOR, "input[name=action][value=remove]"
        ).is_selected()
        assert browser.find_element(By.ID, "tags").get_attribute("value") == "my-own-tags"
        # Tab A, the run's own, shows it finished with its report.
        browser.switch_to.window(tab_a)
        wait(browser, lambda d: d.find_elements(By.ID, "report-csv"))
        assert browser.find_element(By.ID, "upload-name").text == "contacts.csv"


def test_the_focus_goes_to_the_next_thing_to_do_after_each_form(server: str, browser: Any) -> None:
    """After the upload the focus is on the chosen action, after the plan on Start."""
    browser.get(server)
    browser.find_element(By.ID, "file").send_keys(str(SAMPLES / "contacts.csv"))
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, lambda d: d.find_element(By.ID, "upload-name"))
    first = focused(browser)
    assert first.get_attribute("name") == "action"
    assert first.get_attribute("value") == "file" or first.is_selected()
    browser.find_element(By.CSS_SELECTOR, "input[name=action][value=add]").click()
    browser.find_element(By.ID, "tags").send_keys("vip")
    browser.find_element(By.ID, "plan-button").click()
    wait(browser, lambda d: d.find_element(By.ID, "plan-summary"))
    assert focused(browser).get_attribute("id") == "run-button"


def _contrast(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    """WCAG 2.2's contrast ratio of two sRGB colours (0-255 channels)."""

    def luminance(rgb: tuple[float, ...]) -> float:
        linear = [
            c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4
            for c in rgb[:3]
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


def test_at_375_px_nothing_overflows_and_the_focus_ring_stands_out(
    server: str, browser: Any, tmp_path: Path
) -> None:
    """On a phone-wide screen the page, its runs table included, never scrolls sideways, and
    the focus ring has at least 3:1 against the section behind it (WCAG 2.2 AA)."""
    browser.get(server)
    upload_and_choose(browser, SAMPLES / "contacts.csv", "add", "vip")
    browser.find_element(By.ID, "plan-button").click()
    wait(browser, lambda d: d.find_element(By.ID, "run-button").is_enabled())
    browser.find_element(By.ID, "run-button").click()
    wait(browser, lambda d: d.find_elements(By.ID, "report-csv"))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 1, "mobile": True},
    )
    browser.get(browser.current_url)
    assert browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr td[data-label]")
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 375, widths
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    picture = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 375, "height": size["height"], "scale": 1},
        },
    )
    shot = ROOT / "benchmarks" / "out" / "web-375.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(base64.b64decode(picture["data"]))

    # The ring, as the browser draws it on a control focused without a pointer.
    browser.execute_script("document.getElementById('upload-button').focus()")
    assert browser.execute_script("return document.activeElement.matches(':focus-visible')")
    ring = browser.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        "return [s.outlineStyle, s.outlineWidth, s.outlineColor,"
        " getComputedStyle(document.activeElement.closest('section')).backgroundColor]"
    )
    assert ring[0] == "solid", ring
    assert float(ring[1].removesuffix("px")) >= 2, ring
    assert _contrast(_rgb(ring[2]), _rgb(ring[3])) >= 3, ring


def test_resume_after_a_server_restart_keeps_the_saved_choices(
    tmp_path: Path, browser: Any
) -> None:
    """A run stopped on the page, then the server restarted: the runs list offers Resume, and
    Resume shows that run's plan with its action and tags, continuing it."""
    # 60 requests at 2 a second: the Stop comes long before the end.
    with serving(tmp_path, per_second=2) as url:
        browser.get(url)
        upload_and_choose(browser, SAMPLES / "contacts.csv", "remove", "my-own-tags")
        browser.find_element(By.ID, "plan-button").click()
        wait(browser, lambda d: d.find_element(By.ID, "run-button").is_enabled())
        browser.find_element(By.ID, "run-button").click()
        wait(browser, lambda d: d.find_element(By.ID, "stop-button")).click()
        wait(
            browser,
            lambda d: d.find_element(By.ID, "progress").get_attribute("data-state") == "stopped",
        )
    with serving(tmp_path, per_second=20) as url:  # the same folder, a new server
        browser.get(url)
        row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#runs tbody tr"))
        assert "unfinished" in row.text
        row.find_element(By.CSS_SELECTOR, "button.resume").click()
        wait(browser, lambda d: d.find_element(By.ID, "plan-summary"))
        assert "An unfinished run of this file and operation exists" in browser.page_source
        assert browser.find_element(By.ID, "tags").get_attribute("value") == "my-own-tags"
        assert browser.find_element(
            By.CSS_SELECTOR, "input[name=action][value=remove]"
        ).is_selected()
        assert focused(browser).get_attribute("id") == "run-button"
        browser.switch_to.active_element.click()
        wait(browser, lambda d: d.find_elements(By.ID, "report-csv"))
        assert browser.find_element(By.ID, "progress").get_attribute("data-state") == "finished"
        assert len(list((tmp_path / "work" / ".batcher").glob("run-*.sqlite"))) == 1


@contextmanager
def in_process(tmp_path: Path) -> Iterator[str]:
    """The page served by this process (so that a test can hold a part of it), in a thread of
    its own; its address with the start secret."""
    settings = settings_for(tmp_path / ".batcher", **{"batch.size": 50})
    app = create_app(settings, WebOptions(sandbox=True, secret=SECRET))
    loop = asyncio.new_event_loop()
    ports: queue.Queue[int] = queue.Queue()
    done = asyncio.Event()

    async def serve() -> None:
        async with serving_app(app, "127.0.0.1", 0) as port:
            ports.put(port)
            await done.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=30)}/?token={SECRET}"
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(60)
        loop.close()


def test_the_csv_is_offered_before_the_xlsx_copy_is_done(
    tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the XLSX writer held at a gate, the finished run's card offers the CSV and says the
    copy is coming; once the writer goes on, the XLSX link appears by itself."""
    gate = threading.Event()
    real = batcher.web.runs.export_report

    def held(*args: Any, **kwargs: Any) -> None:
        assert gate.wait(60), "the test never opened the gate"
        real(*args, **kwargs)

    monkeypatch.setattr(batcher.web.runs, "export_report", held)
    with in_process(tmp_path) as url:
        try:
            browser.get(url)
            upload_and_choose(browser, SAMPLES / "contacts.csv", "add", "vip")
            browser.find_element(By.ID, "plan-button").click()
            wait(browser, lambda d: d.find_element(By.ID, "run-button").is_enabled())
            browser.find_element(By.ID, "run-button").click()
            wait(browser, lambda d: d.find_elements(By.ID, "report-csv"))
            assert browser.find_element(By.ID, "xlsx-pending").is_displayed()
            assert not browser.find_elements(By.ID, "report-xlsx")
        finally:
            gate.set()
        wait(browser, lambda d: d.find_elements(By.ID, "report-xlsx"))
        assert not browser.find_elements(By.ID, "xlsx-pending")


def test_an_undetected_id_column_is_mapped_and_a_sheet_chosen(
    server: str, browser: Any, tmp_path: Path
) -> None:
    """A file whose id column is "Record" is kept, the id column list has the focus, and the
    plan reads the column chosen there, and the tags and action columns ("Labels", "Do")
    chosen in theirs; a workbook whose first sheet is empty offers its
    sheets in a list, and the plan reads the one chosen."""
    from selenium.webdriver.support.ui import Select

    records = tmp_path / "records.csv"
    records.write_text("Record,Labels,Do\ng9Tx27DdxE3tn8SefKjA,vip,remove\n", encoding="utf-8")
    browser.get(server)
    browser.find_element(By.ID, "file").send_keys(str(records))
    browser.find_element(By.ID, "upload-button").click()
    problem = wait(browser, lambda d: d.find_element(By.ID, "column-problem")).text
    assert "choose it in the Contact id column list" in problem
    assert "--id-column" not in browser.page_source
    assert focused(browser).get_attribute("id") == "id_column"
    Select(browser.find_element(By.ID, "id_column")).select_by_value("Record")
    tags_column = Select(browser.find_element(By.ID, "tags_column"))
    assert tags_column.first_selected_option.text == "(none)"
    tags_column.select_by_value("Labels")
    Select(browser.find_element(By.ID, "action_column")).select_by_value("Do")
    browser.find_element(By.CSS_SELECTOR, 'input[name="action"][value="file"]').click()
    browser.find_element(By.ID, "plan-button").click()
    summary = wait(browser, lambda d: d.find_element(By.ID, "plan-summary")).text
    assert summary.startswith("1 rows")
    cells = browser.find_elements(By.CSS_SELECTOR, "#first-rows tbody td")
    assert [cell.text for cell in cells[1:4]] == ["g9Tx27DdxE3tn8SefKjA", "remove", "vip"]

    book = tmp_path / "book.xlsx"
    workbook = xlsxwriter.Workbook(str(book))
    workbook.add_worksheet("Notes")
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, ["contact_id", "tags", "action"])
    sheet.write_row(1, 0, ["g9Tx27DdxE3tn8SefKjA", "vip", "add"])
    workbook.close()
    browser.find_element(By.ID, "file").send_keys(str(book))
    browser.find_element(By.ID, "upload-button").click()
    wait(browser, lambda d: d.find_element(By.ID, "upload-name").text == "book.xlsx")
    assert "is empty" in browser.find_element(By.ID, "column-problem").text
    choice = Select(browser.find_element(By.ID, "sheet"))
    assert [option.text for option in choice.options] == ["Notes", "Contacts"]
    choice.select_by_visible_text("Contacts")
    browser.find_element(By.ID, "plan-button").click()
    reading = wait(browser, lambda d: d.find_element(By.ID, "plan-reading")).text
    assert reading == 'Read as sheet "Contacts", as chosen.'
