"""Only the operator uses the page: the start secret, sessions, the password, and throttling."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from batcher.domain.errors import UsageError
from batcher.web import PagePassword, WebOptions, check_bind, create_app
from batcher.web.access import MIN_PASSWORD, Throttle
from batcher.web.app import PAGE
from tests.web.helpers import SAMPLES, SECRET, page_for, settings_for

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = (SAMPLES / "contacts.csv").read_bytes()
PASSWORD = "correct-horse-battery-staple"
RUN = "0123456789abcdef"

# Every route of the page but the login page and its style sheet.
GUARDED = [
    ("GET", "/progress"),
    ("GET", "/events"),
    ("GET", f"/runs/{RUN}/report.csv"),
    ("GET", f"/runs/{RUN}/report.xlsx"),
    ("GET", "/static/app.js"),
    ("GET", "/no-such-page"),
    ("POST", "/upload"),
    ("POST", "/plan"),
    ("POST", "/run"),
    ("POST", "/stop"),
    ("POST", "/undo"),
    ("POST", "/undo/run"),
]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_without_the_start_secret_every_route_is_refused(tmp_path: Path) -> None:
    """No session: the page redirects to /login, every other route answers 401, even a POST with
    the page's real CSRF token; only /login and its style sheet answer."""
    async with page_for(settings_for(tmp_path / ".batcher"), log_in=False) as page:
        csrf = page.client.app[PAGE].csrf
        async with page.client.get("/", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/login"
        for method, path in GUARDED:
            async with page.client.request(
                method, path, data={"csrf": csrf, "upload": RUN}, allow_redirects=False
            ) as response:
                assert response.status == 401, (method, path)
                assert "log in first" in await response.text()
        for path in ("/login", "/static/app.css"):
            async with page.client.get(path) as response:
                assert response.status == 200, path
        assert not (tmp_path / ".batcher" / "uploads").exists()


async def test_the_start_secret_is_exchanged_for_a_session_cookie(tmp_path: Path) -> None:
    """The address with `?token=` answers a redirect to itself without the token, with an
    HttpOnly, SameSite=Strict, Path=/ cookie that holds a session, not the secret."""
    async with page_for(settings_for(tmp_path / ".batcher"), log_in=False) as page:
        async with page.client.get(
            f"/?upload={RUN}&token={SECRET}", allow_redirects=False
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"/?upload={RUN}"
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback
        assert SECRET not in cookie
        status, text = await page.get("/")
        assert status == 200
        assert 'id="upload-form"' in text
        status, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        assert status == 200
        assert upload_id
        # Without the cookie (another browser, another user of the machine): nothing.
        page.client.session.cookie_jar.clear()
        async with page.client.get("/progress") as response:
            assert response.status == 401


async def test_a_wrong_secret_is_refused_and_counts_as_a_failure(tmp_path: Path) -> None:
    """A forged `?token=` gets the login page (401) and no cookie."""
    async with page_for(settings_for(tmp_path / ".batcher"), log_in=False) as page:
        async with page.client.get("/?token=guess", allow_redirects=False) as response:
            assert response.status == 401
            assert "Set-Cookie" not in response.headers
            assert "changes each time batcher serve starts" in await response.text()
        async with page.client.get("/progress") as response:
            assert response.status == 401


async def test_the_login_form_takes_the_printed_address_or_the_secret(tmp_path: Path) -> None:
    """Pasting the address (or the bare secret) into /login logs in; anything else does not."""
    async with page_for(settings_for(tmp_path / ".batcher"), log_in=False) as page:
        async with page.client.post(
            "/login", data={"secret": "http://127.0.0.1:8765/?token=nope"}, allow_redirects=False
        ) as response:
            assert response.status == 401
        for given in (f"http://127.0.0.1:8765/?token={SECRET}", f"  {SECRET}  "):
            page.client.session.cookie_jar.clear()
            async with page.client.post(
                "/login", data={"secret": given}, allow_redirects=False
            ) as response:
                assert response.status == 303
                assert response.headers["Location"] == "/"
            async with page.client.get("/progress") as response:
                assert response.status == 200


async def test_beyond_loopback_the_password_is_exchanged_for_the_cookie(tmp_path: Path) -> None:
    """With a password, /login takes it (HTTP Basic is gone: its header opens nothing)."""
    options = WebOptions(sandbox=True, host="0.0.0.0", password=PASSWORD)
    async with page_for(settings_for(tmp_path / ".batcher"), options, log_in=False) as page:
        async with page.client.get(
            "/progress",
            headers={"Authorization": "Basic b3BzOmNvcnJlY3QtaG9yc2UtYmF0dGVyeS1zdGFwbGU="},
        ) as response:
            assert response.status == 401
        async with page.client.get("/login") as response:
            assert "password, or the address" in await response.text()
        async with page.client.post(
            "/login", data={"secret": PASSWORD[:-1]}, allow_redirects=False
        ) as response:
            assert response.status == 401
        async with page.client.post(
            "/login", data={"secret": PASSWORD}, allow_redirects=False
        ) as response:
            assert response.status == 303
        status, _ = await page.get("/")
        assert status == 200


async def test_password_guessing_is_throttled_on_one_connection(tmp_path: Path) -> None:
    """1,000 guesses within one second (the clock stands still) get five checked; the rest are
    refused unchecked (429, Retry-After) even the right password; the printed address still
    logs in."""
    clock = Clock()
    options = WebOptions(sandbox=True, host="0.0.0.0", password=PASSWORD, clock=clock)
    async with page_for(settings_for(tmp_path / ".batcher"), options, log_in=False) as page:
        statuses = []
        for guess in range(1000):
            async with page.client.post(
                "/login", data={"secret": f"guess-{guess:04d}-padding"}, allow_redirects=False
            ) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert int(response.headers["Retry-After"]) >= 1
        assert statuses.count(401) == 5
        assert statuses.count(429) == 995
        async with page.client.post(
            "/login", data={"secret": PASSWORD}, allow_redirects=False
        ) as response:
            assert response.status == 429  # locked out: not even checked
        clock.now += 3  # past the lock-out window (1 s, then 2 s...)
        async with page.client.post(
            "/login", data={"secret": PASSWORD}, allow_redirects=False
        ) as response:
            assert response.status == 303
        page.client.session.cookie_jar.clear()
        for guess in range(20):
            async with page.client.post("/login", data={"secret": f"again-{guess}"}) as response:
                pass
        async with page.client.get(f"/?token={SECRET}", allow_redirects=False) as response:
            assert response.status == 303  # the operator's address is never locked out


def test_the_throttle_holds_across_many_addresses_and_doubles() -> None:
    """1,000 guesses from 1,000 addresses in one second get at most the server's free 50
    checked; each later failure doubles the lock-out, up to its cap; a quiet hour forgets."""
    clock = Clock()
    throttle = Throttle(clock)
    checked = 0
    for n in range(1000):
        client = f"10.0.{n // 256}.{n % 256}"
        if throttle.wait_s(client) == 0:
            checked += 1
            throttle.failed(client)
    assert checked == 50
    one = Throttle(clock)
    waits = []
    for _ in range(20):
        clock.now += one.wait_s("a")
        one.failed("a")
        waits.append(one.wait_s("a"))
    assert waits[:4] == [0.0] * 4
    assert waits[4:8] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == 900.0
    clock.now += 3600 + 900
    one.failed("a")
    assert one.wait_s("a") == 0.0  # forgotten: a first failure again


def test_the_password_rules() -> None:
    """Beyond loopback: a named variable must hold 16+ characters (else exit 2); none named
    makes one; on loopback the start secret is enough."""
    settings = settings_for(Path("/nonexistent"), **{"serve.password_env": "PAGE_PASSWORD"})
    plain = settings_for(Path("/nonexistent"))
    with pytest.raises(UsageError, match="needs a password"):
        check_bind(settings, "0.0.0.0", environ={})
    with pytest.raises(UsageError, match=f"fewer than the {MIN_PASSWORD} needed"):
        check_bind(settings, "0.0.0.0", environ={"PAGE_PASSWORD": "x" * (MIN_PASSWORD - 1)})
    with pytest.raises(UsageError, match=f"fewer than the {MIN_PASSWORD} needed"):
        check_bind(settings, "127.0.0.1", environ={"PAGE_PASSWORD": "short"})
    assert check_bind(settings, "0.0.0.0", environ={"PAGE_PASSWORD": PASSWORD}) == PagePassword(
        PASSWORD
    )
    made = check_bind(plain, "192.168.1.5", environ={})
    assert made is not None
    assert made.generated
    assert len(made.text) >= MIN_PASSWORD
    assert made.text not in repr(made)
    assert check_bind(plain, "127.0.0.1", environ={}) is None
    assert check_bind(settings, "::1", environ={}) is None
    with pytest.raises(UsageError, match="needs a password"):
        create_app(plain, WebOptions(host="0.0.0.0"))


async def test_the_secret_is_in_no_answer_and_no_crash_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the login redirect no answer holds the secret, not even an internal error's page
    or its crash file (one line on the page, the details in the file)."""
    state_dir = tmp_path / ".batcher"
    async with page_for(settings_for(state_dir)) as page:
        status, _, upload_id = await page.upload("contacts.csv", CONTACTS)
        assert status == 200
        await page.post("/plan", {"upload": upload_id, "action": "add", "tags": "vip"})
        await page.post("/plan", {"upload": RUN, "action": "add", "tags": "vip"})

        def broken(_: Path) -> list[object]:
            raise RuntimeError(f"boom while serving /?token={SECRET}")

        monkeypatch.setattr("batcher.web.app.runs_in", broken)
        status, text = await page.get("/")
        assert status == 500
        assert "internal error (RuntimeError: boom while serving /?token=[secret])" in text
        assert "Traceback" not in text
        async with page.client.get("/progress") as response:
            page.seen.append(await response.text())
    for text in page.seen:
        assert SECRET not in text
        assert SECRET[:12] not in text
    (crash,) = state_dir.glob("crash-*.txt")
    assert SECRET[:12] not in crash.read_text(encoding="utf-8")


def test_serve_prints_the_secret_once_and_never_logs_it(tmp_path: Path) -> None:
    """`batcher serve` prints the address with the secret on stdout and in its first stderr
    line; logging in, failing to, and stopping log nothing more that holds it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BATCHER_TOKEN", None)
    with subprocess.Popen(
        [sys.executable, "-m", "batcher", "serve", "--sandbox", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        base, _, secret = url.partition("/?token=")
        assert base.startswith("http://127.0.0.1:")
        assert len(secret) >= 43  # 32 random bytes
        with urllib.request.urlopen(url, timeout=60) as answer:  # the page, via the redirect
            assert answer.status == 200
            assert secret not in answer.read().decode()
        for wrong in (f"{base}/?token=x", f"{base}/progress"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(wrong, timeout=60)
            assert refused.value.code == 401
            refused.value.close()
        child.terminate()
        out, err = child.communicate(timeout=60)
    assert secret not in out
    lines = err.splitlines()
    assert secret in lines[0]
    assert not any(secret in line for line in lines[1:])
    assert "Traceback" not in err
