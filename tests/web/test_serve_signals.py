"""`batcher serve` stopped by SIGTERM or SIGINT: the run in progress stops gracefully, the
server says so in one line and exits, even with a browser's progress stream open."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.web.helpers import SAMPLES, multipart

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_run_and_the_server_and_says_so(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """The signal's line names the graceful stop of the run, a last line says the server has
    stopped, the exit status is 0 and the run's record holds its report with the rest pending."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BATCHER_BATCH_SIZE": "50",
        # 2 requests a second: 30 s of run, far longer than the stop takes.
        "BATCHER_LIMITS_REQUESTS_PER_INTERVAL": "2",
        "BATCHER_LIMITS_INTERVAL_MS": "1000",
    }
    env.pop("BATCHER_TOKEN", None)
    with subprocess.Popen(
        [sys.executable, "-m", "batcher", "serve", "--sandbox", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            url = child.stdout.readline().strip()
            base = url.partition("/?")[0]
            browser = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            )
            page = browser.open(url, timeout=30).read().decode()
            found = re.search(r'name="csrf" value="([^"]+)"', page)
            assert found is not None
            csrf = found.group(1)
            body, content_type = multipart(
                csrf, "contacts.csv", (SAMPLES / "contacts.csv").read_bytes()
            )
            upload = urllib.request.Request(
                f"{base}/upload", data=body, headers={"Content-Type": content_type}
            )
            page = browser.open(upload, timeout=30).read().decode()
            upload_id = re.search(r'name="upload" value="([0-9a-f]{16})"', page)
            assert upload_id is not None
            form = {"csrf": csrf, "upload": upload_id.group(1), "action": "add", "tags": "vip"}
            browser.open(f"{base}/run", data=urlencode(form).encode(), timeout=30).read()
            with browser.open(f"{base}/events", timeout=30) as events:  # a page watching it
                assert events.readline().startswith(b"data: ")
                child.send_signal(sig)
                _, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 0, err
    lines = err.splitlines()
    assert (
        f"batcher: {sig.name} received: stopping the page's server; the run in progress "
        in (lines[1])
    )
    assert "the rest stays pending" in lines[1]
    assert lines[-1] == "batcher: the page's server has stopped"
    assert "Traceback" not in err
    (record_file,) = (tmp_path / ".batcher" / "web").glob("*/run.json")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    assert record["exit_code"] == 3
    assert record["counts"]["pending"] > 0
    assert "press Resume" in record["message"]
    assert (record_file.parent / record["report_csv"]).is_file()
