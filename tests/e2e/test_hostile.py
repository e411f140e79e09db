"""Whole runs against a hostile server on loopback: nothing it sends may hurt the run.

The server echoes the token back, answers 100 MiB, nests JSON past the parser's limit, writes
lone surrogates, redirects. Every run must end with its rows accounted for, the token in no
report, state file or result, memory bounded, and a rerun against a healthy server complete.
"""

from __future__ import annotations

import csv
import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from batcher.app.execute import execute
from batcher.app.jobs import Job
from batcher.app.result import RunResult
from batcher.domain.config import LimitSettings, RetrySettings, Settings
from batcher.domain.errors import AuthError
from batcher.loading import InputOptions

from .conftest import LOCATION, contact_ids, fast_settings, write_csv
from .hostile import MIB, HostileServer, created, entries, healthy, stream

# Made up; shaped like a Private Integration Token.
TOKEN = "pit-3e9b71c4-a2d8-4f60-9c1e-5b7d0a8f2e64"
ADD_VIP = InputOptions(action="add", tags=("vip",), default_location_id=LOCATION)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BATCHER_TOKEN", TOKEN)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return TOKEN


def settings(tmp_path: Path, url: str, **sections: Any) -> Settings:
    # Two attempts per batch, no waiting, and no early stop: every batch reaches its end.
    sections.setdefault(
        "retry",
        RetrySettings(
            attempts=2, initial_backoff_s=0.0, max_backoff_s=0.0, max_consecutive_failures=1000
        ),
    )
    return fast_settings(tmp_path, url, **sections)


def job(tmp_path: Path, source: Path) -> Job:
    return Job(input_path=source, input=ADD_VIP, report_path=tmp_path / "report.csv")


def report(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "report.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def token_pieces(text: str) -> list[str]:
    """Every 8-character piece of TOKEN that `text` holds, in any case."""
    folded, secret = text.casefold(), TOKEN.casefold()
    return [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in folded]


def result_texts(result: RunResult) -> str:
    """The result as anyone could print it, the stopping error's whole chain included."""
    texts = [repr(result)]
    error: BaseException | None = result.stopped
    while error is not None:
        texts += [str(error), repr(error), repr(getattr(error, "headers", None))]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def assert_token_nowhere(tmp_path: Path, result: RunResult) -> None:
    assert token_pieces((tmp_path / "report.csv").read_text(encoding="utf-8")) == []
    state = sorted((tmp_path / "state").rglob("*"))
    assert any(path.is_file() for path in state)
    for path in state:
        if path.is_file():
            # SQLite keeps text as UTF-8; latin-1 reads any byte, and the token is ASCII.
            assert token_pieces(path.read_bytes().decode("latin-1")) == [], path
    assert token_pieces(result_texts(result)) == []


ECHOES = [
    pytest.param(TOKEN, id="verbatim"),
    pytest.param(TOKEN.upper(), id="upper-cased"),
    pytest.param(TOKEN[9:21], id="a 12-character piece"),
]


@pytest.mark.parametrize("echo", ECHOES)
async def test_a_token_echoed_in_answers_reaches_no_report_state_or_result(
    tmp_path: Path, echo: str
) -> None:
    ids = contact_ids(40)
    doomed = set(ids[:10])  # their batch always gets a 500 echoing the token: `failed`

    async def echoing(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if doomed & set(body["contacts"]):
            return web.json_response(
                {"statusCode": 500, "message": f"upstream saw Bearer {echo}"},
                status=500,
                headers={"X-Echo": echo},
            )
        return created(
            entries(
                body["contacts"],
                message=f"Tags updated for {echo}",
                old=[echo, "old"],
                added=["vip", f"{echo}!"],
                removed=[echo.swapcase()],
            )
        )

    source = write_csv(tmp_path / "in.csv", ids)
    async with HostileServer(echoing) as server:
        result = await execute(settings(tmp_path, server.url), job(tmp_path, source))

    lines = report(tmp_path)
    assert {line["status"] for line in lines[:10]} == {"failed"}
    assert {line["status"] for line in lines[10:]} == {"success"}
    assert "upstream saw Bearer [token]" in lines[0]["message"]
    assert lines[10]["message"] == "Tags updated for [token]"
    assert result.exit_code == 1
    assert {seen.authorization for seen in server.requests} == {f"Bearer {TOKEN}"}
    assert_token_nowhere(tmp_path, result)


@pytest.mark.parametrize("echo", ECHOES)
async def test_a_refusal_echoing_the_token_stops_the_run_without_it(
    tmp_path: Path, echo: str
) -> None:
    async def refusing(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(
            {"statusCode": 401, "message": f"Invalid token: {echo}"},
            status=401,
            headers={"WWW-Authenticate": f'Bearer error="{echo}"'},
        )

    source = write_csv(tmp_path / "in.csv", contact_ids(20))
    async with HostileServer(refusing) as server:
        result = await execute(settings(tmp_path, server.url), job(tmp_path, source))

    assert isinstance(result.stopped, AuthError)
    assert "(HTTP 401: Invalid token: [token])" in result.stopped.message
    assert {line["status"] for line in report(tmp_path)} == {"pending"}
    assert_token_nowhere(tmp_path, result)


async def traced_peak(tmp_path: Path, url: str, source: Path) -> tuple[RunResult, int]:
    """Run once with tracemalloc on; the peak of memory allocated through Python meanwhile.

    tracemalloc sees every allocation of the process (client, server, ledger alike) and is not
    disturbed by what the allocator keeps or the OS reports, unlike ru_maxrss; a baseline run in
    the same process and the same shape makes the comparison independent of what the rest of
    the suite left allocated.
    """
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        one_at_a_time = LimitSettings(concurrency=1, requests_per_interval=1000, interval_ms=1000)
        result = await execute(settings(tmp_path, url, limits=one_at_a_time), job(tmp_path, source))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_a_100_mib_answer_fails_its_rows_with_memory_bounded(
    tmp_path: Path, declare_length: bool
) -> None:
    ids = contact_ids(20)
    huge = set(ids[:10])

    async def flooding(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if huge & set(body["contacts"]):
            return await stream(request, status=201, total=100 * MIB, declare_length=declare_length)
        return await healthy(request, body)

    normal_dir, hostile_dir = tmp_path / "normal", tmp_path / "hostile"
    normal_dir.mkdir()
    hostile_dir.mkdir()
    async with HostileServer(healthy) as server:
        source = write_csv(normal_dir / "in.csv", ids)
        normal, normal_peak = await traced_peak(normal_dir, server.url, source)
        server.behaviour = flooding
        source = write_csv(hostile_dir / "in.csv", ids)
        hostile, hostile_peak = await traced_peak(hostile_dir, server.url, source)

    # One answer at a time is held: at most 4 MiB plus a chunk, and the stream's buffers.
    # Reading the whole answer would add 100 MiB (200 MiB while joining it).
    assert hostile_peak - normal_peak < 8 * MIB, (normal_peak, hostile_peak)
    assert normal.exit_code == 0
    assert hostile.exit_code == 1
    lines = report(hostile_dir)
    assert {line["status"] for line in lines[:10]} == {"failed"}
    assert "answer larger than 4 MiB" in lines[0]["message"]
    assert {line["status"] for line in lines[10:]} == {"success"}


def deeply_nested(depth: int = 50_000) -> bytes:
    return b'{"responses": ' + b"[" * depth + b"]" * depth + b"}"


async def test_nested_json_and_lone_surrogates_neither_crash_nor_stick(tmp_path: Path) -> None:
    ids = contact_ids(30)
    nested = set(ids[:10])

    async def garbling(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if nested & set(body["contacts"]):
            return web.Response(status=201, body=deeply_nested(), content_type="application/json")
        # Lone surrogates as JSON escapes, which json.loads turns into unencodable text.
        text = json.dumps({"responses": entries(body["contacts"], message="ok MARK")})
        text = text.replace("MARK", "\\ud800 \\udfff\\u001b[2J")
        text = text.replace('"tagsAdded": ["vip"]', '"tagsAdded": ["vip\\udc80"]')
        return web.Response(status=201, text=text, content_type="application/json")

    source = write_csv(tmp_path / "in.csv", ids)
    async with HostileServer(garbling) as server:
        first = await execute(settings(tmp_path, server.url), job(tmp_path, source))
        lines = report(tmp_path)
        assert first.exit_code == 1
        assert {line["status"] for line in lines[:10]} == {"failed"}
        assert "not readable JSON" in lines[0]["message"]
        assert {line["status"] for line in lines[10:]} == {"success"}
        assert lines[10]["message"] == "ok \ufffd \ufffd\ufffd[2J"
        assert json.loads(lines[10]["tags_added"]) == ["vip\ufffd"]

        server.behaviour = healthy
        again = await execute(settings(tmp_path, server.url), job(tmp_path, source))

    assert again.exit_code == 0
    lines = report(tmp_path)
    assert {line["status"] for line in lines} == {"success"}
    assert lines[10]["message"] == "ok \ufffd \ufffd\ufffd[2J"  # settled rows are not resent
    resent = {c for seen in server.requests[-1:] for c in seen.contacts}
    assert resent <= nested


async def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    async with HostileServer(healthy) as elsewhere:

        async def redirecting(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
            target = f"{elsewhere.url}{request.path}"
            return web.Response(status=307, headers={"Location": target})

        source = write_csv(tmp_path / "in.csv", contact_ids(20))
        async with HostileServer(redirecting) as server:
            result = await execute(settings(tmp_path, server.url), job(tmp_path, source))

    assert elsewhere.requests == []
    assert len(server.requests) == 2  # two batches, each refused once: a 3xx is not retried
    assert result.exit_code == 1
    lines = report(tmp_path)
    assert {line["status"] for line in lines} == {"failed"}
    assert f"redirect not followed (Location: {elsewhere.url}/contacts" in lines[0]["message"]
