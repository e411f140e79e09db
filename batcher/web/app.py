"""The page's server: routes, the guards every request passes, and the server's lifetime.

Guards (SPEC "The web page", DESIGN "web/"):
- the state directory passes `run`'s trust checks (`batcher.app.directory.check_state_dir`: another
  user's, or one others may write, is refused), and its `uploads` and `web` folders must be real
  folders of ours (`batcher.support.files.own_subdir`);
- each connection has header, body and idle deadlines, and each client address a cap on its
  connections (`batcher.web.connections`);
- bound to loopback, the `Host` header must name loopback too (a page elsewhere that rebinds its
  own name to 127.0.0.1 cannot read this one);
- only the operator: every route but the login page needs the session cookie that the start
  secret (or, beyond loopback, the password) is exchanged for; failures are throttled
  (`batcher.web.access`);
- every POST carries the page's CSRF token (a form field, or the `X-CSRF-Token` header), and a
  browser's `Origin`/`Sec-Fetch-Site` must say the request comes from the page itself;
- the API token is never read here: the library reads it in the run's thread; messages shown
  are scrubbed of it (and of the start secret, the password and proxy credentials), and a last
  net scrubs every text answer;
- odd input gets a 4xx with a message, never a 500: an unexpected error is one line on the page
  and its details in a crash file;
- one run at a time: the state directory's lock (as for the CLI), checked before starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hmac
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from batcher import RunInfo, runs_in
from batcher.app.directory import check_free, check_state_dir
from batcher.app.inputs import detect_columns
from batcher.app.jobs import Job
from batcher.domain.config import Settings
from batcher.domain.credentials import credential_variables
from batcher.domain.errors import BatcherError, StateLockedError, UsageError
from batcher.domain.net import is_loopback
from batcher.support.crash import write_crash_file
from batcher.support.secrets import Scrubber
from batcher.web.access import Access, check_bind
from batcher.web.connections import CONNECTIONS, Connections, Limits, body_deadline, read_form
from batcher.web.page import PageState, progress_json, render, render_login
from batcher.web.runs import (
    ActiveRun,
    Operation,
    PlanView,
    Runs,
    UndoPlan,
    page_words,
    plan,
    resumable,
    undo_plan,
    undo_problem,
)
from batcher.web.uploads import TooLargeError, Upload, Uploads

__all__ = ["PAGE", "WebOptions", "check_bind", "create_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# How often the progress stream sends numbers (seconds).
PROGRESS_EVERY_S = 0.5
# How long a stopping server waits for the run's in-flight requests and report (seconds).
STOP_WAIT_S = 60.0
# How often a running server deletes the uploads and page reports past state.keep_days.
PRUNE_EVERY_S = 86_400.0
# The routes open without a session: the login page and the style sheet it uses.
OPEN_PATHS = frozenset({"/login", "/static/app.css"})
# How much of a download is read from disk at a time.
_DOWNLOAD_CHUNK = 1 << 18


def _ignore(message: str) -> None:
    """The default `warn`: a caller that passes none hears nothing."""


@dataclass(frozen=True)
class WebOptions:
    """How the page was started: `config_file` and `sandbox` go into every job, as for `run`.

    `password` is the checked one (`check_bind`); `secret` is the start secret ("": one is made);
    `clock` times the login throttle; `warn` hears about a group-writable state directory.
    """

    config_file: Path | None = None
    sandbox: bool = False
    # The sandbox's fixture for every run (`batcher.app.emulator.serve_fixture`); None: the
    # config's `[sandbox] fixture`, or none.
    fixture: Path | None = None
    host: str = "127.0.0.1"
    password: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    clock: Callable[[], float] = time.monotonic
    warn: Callable[[str], None] = _ignore


class _NotFoundError(UsageError):
    """What the form names is not there (any more): a 404 with the message."""


class Page:
    """The routes of the page, over one state directory."""

    def __init__(self, settings: Settings, options: WebOptions) -> None:
        self.settings = settings
        self.options = options
        self.state_dir = Path(settings.state.dir)
        self.csrf = secrets.token_urlsafe(32)
        self.access = Access(secret=options.secret, password=options.password, clock=options.clock)
        tokens = (os.environ.get(name, "") for name in credential_variables(settings.api))
        self.scrubber = Scrubber.for_environment(
            None,
            tokens=[token for token in tokens if token],
            others=[self.access.secret, *([options.password] if options.password else [])],
        )
        serve = settings.serve
        self.uploads = Uploads(
            self.state_dir,
            serve.max_upload_mb * 2**20,
            serve.max_total_upload_mb * 2**20,
            settings.input.encoding,
        )
        self.runs = Runs(settings, self.scrubber)
        self.limits = Limits.of(serve)

    # -- helpers -------------------------------------------------------------------------

    def _target(self) -> str:
        if self.options.sandbox:
            fixture = self.options.fixture
            return "the embedded sandbox" + (f" (fixture {fixture})" if fixture else "")
        return urlsplit(self.settings.api.base_url).netloc or self.settings.api.base_url

    def _state(self, **changes: object) -> PageState:
        state = PageState(
            csrf=self.csrf,
            target=self._target(),
            state_dir=str(self.state_dir),
            max_upload_mb=self.settings.serve.max_upload_mb,
            sandbox=self.options.sandbox,
            current=self.runs.current,
            runs=runs_in(self.state_dir) if self.state_dir.is_dir() else [],
            records=self.runs.records(),
        )
        for key, value in changes.items():
            setattr(state, key, value)
        if state.error and not state.focus:
            state.focus = "error"
        upload, op = state.upload, state.operation
        if upload is not None and state.columns is None:
            # The columns as the operation's choices read them (its sheet, id column, encoding,
            # the columns chosen).
            with contextlib.suppress(BatcherError):
                state.columns = detect_columns(
                    upload.path,
                    sheet=op.sheet.strip() or None,
                    id_column=op.id_column.strip() or None,
                    encoding=op.encoding.strip() or self.settings.input.encoding,
                    mapped=(op.tags_column, op.action_column, op.location_column),
                )
        return state

    def _page(self, state: PageState, status: int = 200) -> web.Response:
        return web.Response(text=render(state), status=status, content_type="text/html")

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, BatcherError):
            return self.scrubber.scrub(page_words(str(exc)))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return (
                "no space left on the device holding the state directory "
                f"{self.state_dir}; free some space and try again"
            )
        crash = write_crash_file(self.state_dir, exc, self.scrubber)
        where = f"details in {crash}" if crash is not None else "no crash file could be written"
        return self.scrubber.scrub(
            f"internal error ({type(exc).__name__}: {exc}); {where}; please report this"
        )

    @staticmethod
    def status_of(exc: BaseException) -> int:
        """The HTTP status of a page showing `exc`: 4xx for what the request can cause."""
        if isinstance(exc, TooLargeError):
            return 413
        if isinstance(exc, StateLockedError):
            return 409
        if isinstance(exc, _NotFoundError):
            return 404
        if isinstance(exc, BatcherError):
            return 400
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return 507
        return 500

    def error_page(self, exc: BaseException) -> web.Response:
        """The page with `exc` as one line (an unexpected one leaves a crash file)."""
        message, status = self._message(exc), self.status_of(exc)
        try:
            return self._page(self._state(error=message), status)
        except Exception:  # the page itself cannot be drawn (the same fault): the line alone
            return web.Response(text=f"batcher: {message}\n", status=status)

    def prune(self, now: float | None = None) -> None:
        """Delete the uploads and page reports past state.keep_days (not the current run's)."""
        keep_days = self.settings.state.keep_days
        current = self.runs.current
        self.uploads.prune(
            keep_days, now=now, keep={current.record.upload_id} if current is not None else ()
        )
        self.runs.prune(keep_days, now=now)

    def _upload(self, upload_id: str) -> Upload:
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise _NotFoundError(
                "that upload is not in the state directory (any more: uploads go after "
                "state.keep_days days); upload the file again"
            )
        return upload

    @staticmethod
    def _operation(form: Mapping[str, object]) -> Operation:
        def text(name: str) -> str:
            value = form.get(name, "")
            return value if isinstance(value, str) else ""

        action = text("action") or "file"
        if action not in ("file", "add", "remove", "remove-all"):
            raise UsageError(f"unknown action {action!r}: choose add, remove or remove all")
        return Operation(
            action=action,
            tags=text("tags"),
            location_id=text("location_id"),
            id_column=text("id_column"),
            sheet=text("sheet"),
            encoding=text("encoding"),
            tags_column=text("tags_column"),
            action_column=text("action_column"),
            location_column=text("location_column"),
        )

    def check_csrf(self, given: object) -> None:
        if not isinstance(given, str) or not hmac.compare_digest(given, self.csrf):
            raise web.HTTPForbidden(
                text="batcher: the form is out of date or did not come from this page (CSRF "
                "token missing or wrong); reload the page and try again"
            )

    # -- routes --------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        upload = None
        if "upload" in request.query:
            upload = self.uploads.get(request.query["upload"])
        notice = "Upload saved: choose the operation and see the plan." if upload else ""
        if "new" not in request.query:
            notice = ""
        operation = Operation()
        current = self.runs.current
        if upload is not None and current is not None and current.record.upload_id == upload.id:
            # The page after a run shows the operation it ran, ready to run again.
            with contextlib.suppress(TypeError):
                operation = Operation(**current.record.choices)
        focus = ""
        if notice:
            focus = "action"  # a new upload: the operation is next
        elif "run" in request.query and current is not None and not current.done:
            focus = "stop-button"  # a run just started: Stop is the one thing left to do
        return self._page(
            self._state(upload=upload, notice=notice, operation=operation, focus=focus)
        )

    async def upload(self, request: web.Request) -> web.Response:
        """multipart: the `csrf` field first (the form puts it first), then the `file`."""
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return self._page(self._state(error="send the file as a form upload"), 400)
        given: str | None = request.headers.get("X-CSRF-Token")
        upload: Upload | None = None
        limits = self.limits

        def piece(read: Awaitable[bytes]) -> Awaitable[bytes]:
            return body_deadline(limits, read)

        try:
            while (part := await body_deadline(limits, reader.next())) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "csrf":
                    given = given or (await piece(part.read(decode=True))).decode(
                        "utf-8", "replace"
                    )
                elif part.name == "file":
                    self.check_csrf(given)  # before a byte of the file is stored
                    await asyncio.to_thread(self.prune)  # room for it: old uploads go first

                    async def chunks(p: BodyPartReader = part) -> AsyncIterator[bytes]:
                        while chunk := await piece(p.read_chunk(1 << 16)):
                            yield chunk

                    upload = await self.uploads.store(part.filename or "", chunks())
                    break
        except (HttpProcessingError, ValueError, AssertionError):
            # A form aiohttp cannot take apart (a NUL in a part's header: the file name).
            return self._page(
                self._state(
                    error="the upload's form could not be read (a control character in the file "
                    "name?); rename the file and upload it again"
                ),
                400,
            )
        except (BatcherError, OSError) as exc:
            return self.error_page(exc)
        if upload is None:
            self.check_csrf(given)
            return self._page(self._state(error="no file in the upload; choose a file"), 400)
        raise web.HTTPSeeOther(f"/?upload={upload.id}&new=1")

    async def _form(self, request: web.Request) -> tuple[Upload, Operation]:
        form = await read_form(request)
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        upload_id = form.get("upload")
        return self._upload(upload_id if isinstance(upload_id, str) else ""), self._operation(form)

    async def plan(self, request: web.Request) -> web.Response:
        upload, operation = await self._form(request)
        return await self._plan(upload, operation)

    async def resume(self, request: web.Request) -> web.Response:
        """The plan of an unfinished page run, with the choices it saved (after a restart too):
        Start continues it, never a new run beside it."""
        form = await read_form(request)
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        try:
            info = self._run_named(form.get("run"))
            record = resumable(info, self.runs.records())
            if record is None:
                raise UsageError(
                    "that run was not started from this page, or is finished: "
                    "`batcher status` names the command that goes on with it"
                )
            upload = self.uploads.get(record.upload_id)
            if upload is None:
                raise _NotFoundError(
                    "that run's upload is gone (uploads go after state.keep_days days): upload "
                    "the same file again and choose the same operation; its plan goes on with "
                    "the unfinished run"
                )
        except Exception as exc:
            return self.error_page(exc)
        return await self._plan(upload, Operation.saved(record.choices))

    async def _plan(self, upload: Upload, operation: Operation) -> web.Response:
        try:
            job = operation.job(
                self.settings,
                upload.path,
                config_file=self.options.config_file,
                sandbox=self.options.sandbox,
                fixture=self.options.fixture,
            )
            if self.runs.busy():
                raise StateLockedError(
                    f"{self.state_dir}: a run started from this page is still going; the plan "
                    "can be seen once it ends (or stop it)"
                )
            view: PlanView = await asyncio.to_thread(plan, self.settings, job)
        except StateLockedError as exc:
            return self._page(
                self._state(upload=upload, operation=operation, error=self._message(exc)), 409
            )
        except Exception as exc:
            return self._page(
                self._state(upload=upload, operation=operation, error=self._message(exc)), 400
            )
        return self._page(
            self._state(upload=upload, operation=operation, plan=view, focus="run-button")
        )

    async def run(self, request: web.Request) -> web.Response:
        upload, operation = await self._form(request)
        try:
            self._check_free()

            def make_job(report: Path) -> Job:
                job = operation.job(
                    self.settings,
                    upload.path,
                    config_file=self.options.config_file,
                    sandbox=self.options.sandbox,
                    report_path=report,
                    fixture=self.options.fixture,
                )
                # `batcher status` names the upload as the person knows it (cron team, CLI).
                return dataclasses.replace(job, input_name=upload.name)

            active = self.runs.start(make_job, upload.name, upload.id, asdict(operation))
        except StateLockedError as exc:
            return self._page(
                self._state(upload=upload, operation=operation, error=self._message(exc)), 409
            )
        except Exception as exc:
            return self._page(
                self._state(upload=upload, operation=operation, error=self._message(exc)), 400
            )
        raise web.HTTPSeeOther(f"/?upload={upload.id}&run={active.record.id}#progress")

    def _undoable(self, given: object) -> RunInfo:
        """The finished run, with its report, that the form names (its state file's name)."""
        info = self._run_named(given)
        if problem := undo_problem(info):
            raise UsageError(problem)
        return info

    def _run_named(self, given: object) -> RunInfo:
        """The run in the state directory that the form names (its state file's name)."""
        name = given if isinstance(given, str) else ""
        runs = runs_in(self.state_dir) if name and self.state_dir.is_dir() else []
        info = next((info for info in runs if info.path.name == name), None)
        if info is None:
            raise UsageError(
                "that run is not in the state directory (any more); reload the page and choose "
                "a run from the list"
            )
        return info

    def _check_free(self) -> None:
        if self.runs.busy():
            raise StateLockedError(
                f"{self.state_dir}: a run started from this page is still going; wait for it "
                "to finish or stop it"
            )
        check_free(self.state_dir)  # refused now, with the CLI's message, if another run holds it

    async def undo_plan(self, request: web.Request) -> web.Response:
        """The undo's plan for a finished run (sends nothing), with the button to start it."""
        form = await read_form(request)
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        try:
            info = self._undoable(form.get("run"))
            self._check_free()
            view: UndoPlan = await asyncio.to_thread(
                undo_plan,
                self.settings,
                info,
                config_file=self.options.config_file,
                sandbox=self.options.sandbox,
            )
        except StateLockedError as exc:
            return self._page(self._state(error=self._message(exc)), 409)
        except Exception as exc:
            return self._page(self._state(error=self._message(exc)), 400)
        return self._page(self._state(undo_plan=view, focus="undo-run-button"))

    async def undo_run(self, request: web.Request) -> web.Response:
        """Start the undo of a finished run (after its plan was shown) as a page run."""
        form = await read_form(request)
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        try:
            info = self._undoable(form.get("run"))
            self._check_free()
            active = self.runs.start_undo(
                info,
                config_file=self.options.config_file,
                sandbox=self.options.sandbox,
            )
        except StateLockedError as exc:
            return self._page(self._state(error=self._message(exc)), 409)
        except Exception as exc:
            return self._page(self._state(error=self._message(exc)), 400)
        raise web.HTTPSeeOther(f"/?run={active.record.id}#progress")

    async def stop(self, request: web.Request) -> web.Response:
        form = await read_form(request)
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        self.runs.stop_current("stopped from the page")
        # Back to the page the Stop was pressed on (its own upload, not the run's).
        upload = form.get("upload")
        known = isinstance(upload, str) and self.uploads.get(upload) is not None
        raise web.HTTPSeeOther(f"/?upload={upload}#progress" if known else "/#progress")

    def _current(self, request: web.Request) -> ActiveRun | None:
        current = self.runs.current
        wanted = request.query.get("run")
        if current is None or (wanted is not None and wanted != current.record.id):
            return None
        return current

    async def progress(self, request: web.Request) -> web.Response:
        current = self._current(request)
        if current is None:
            return web.json_response({"state": "none"})
        return web.Response(text=progress_json(current.snapshot()), content_type="application/json")

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the progress numbers every PROGRESS_EVERY_S, then `done`."""
        current = self._current(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        if current is None:
            await response.write(b"event: done\ndata: {}\n\n")
            return response
        with contextlib.suppress(ConnectionResetError):
            while True:
                done = current.done
                data = progress_json(current.snapshot())
                await response.write(f"data: {data}\n\n".encode())
                if done:
                    await response.write(b"event: done\ndata: {}\n\n")
                    break
                await asyncio.sleep(PROGRESS_EVERY_S)
        return response

    async def report(self, request: web.Request) -> web.StreamResponse:
        """A page run's report, read from the descriptor `Runs.report_file` opened (a regular
        file of ours in the run's folder, no link followed), under the input's name."""
        kind = request.match_info["kind"]
        found = self.runs.report_file(request.match_info["run"], kind)
        if found is None:
            raise web.HTTPNotFound(text="batcher: no such report")
        fd, name = found
        with os.fdopen(fd, "rb") as report:
            size = os.fstat(report.fileno()).st_size
            # Invisible characters (bidi, controls) become "_": the saved file's name shows
            # what it is. An ASCII name for old clients, the real one (RFC 6266/5987) for others.
            name = "".join(c if c.isprintable() else "_" for c in name)
            fallback = "".join(c if c.isascii() and c not in '"\\' else "_" for c in name)
            response = web.StreamResponse(
                headers={
                    "Content-Disposition": f'attachment; filename="{fallback}"; '
                    f"filename*=UTF-8''{quote(name, safe='')}",
                    "Content-Type": "text/csv; charset=utf-8"
                    if kind == "csv"
                    else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                }
            )
            response.content_length = size
            await response.prepare(request)
            while chunk := await asyncio.to_thread(report.read, _DOWNLOAD_CHUNK):
                await response.write(chunk)
            await response.write_eof()
        return response

    # -- logging in ----------------------------------------------------------------------

    def _cookie_name(self, request: web.Request) -> str:
        # Cookies do not tell ports apart: one name per port, so that two servers on one
        # machine do not overwrite each other's session.
        return f"batcher_session_{request.url.port or 0}"

    def has_session(self, request: web.Request) -> bool:
        return self.access.has_session(request.cookies.get(self._cookie_name(request)))

    def _logged_in(self, request: web.Request, location: str) -> web.HTTPSeeOther:
        """A redirect to `location` that carries a new session's cookie."""
        self.access.throttle.succeeded(_client(request))
        response = web.HTTPSeeOther(location)
        response.set_cookie(
            self._cookie_name(request),
            self.access.new_session(),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    def _login_page(self, request: web.Request, error: str, status: int) -> web.Response:
        return web.Response(
            text=render_login(error=error, password=bool(self.access.password)),
            status=status,
            content_type="text/html",
        )

    def _throttled(self, request: web.Request) -> web.Response | None:
        wait = self.access.throttle.wait_s(_client(request))
        if wait <= 0:
            return None
        response = self._login_page(
            request,
            f"too many wrong attempts; try again in {max(1, round(wait)):,} s (or open the "
            "address batcher serve printed)",
            429,
        )
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response

    def token_login(self, request: web.Request) -> web.StreamResponse:
        """A GET carrying `?token=`: the start secret, exchanged for the session cookie and a
        redirect to the same address without it; anything else counts as a failed attempt."""
        if self.access.is_secret(request.query.get("token", "")):
            rest = request.rel_url.with_query(
                [(k, v) for k, v in request.rel_url.query.items() if k != "token"]
            )
            raise self._logged_in(request, str(rest))
        if (throttled := self._throttled(request)) is not None:
            return throttled
        self.access.throttle.failed(_client(request))
        return self._login_page(
            request,
            "that address's secret is not this server's: it changes each time batcher serve "
            "starts; open the address it printed last",
            401,
        )

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if self.has_session(request):
            raise web.HTTPSeeOther("/")
        return self._login_page(request, "", 200)

    async def login(self, request: web.Request) -> web.StreamResponse:
        """The login form: the start secret, the address printed with it, or the password."""
        form = await read_form(request)
        given = form.get("secret")
        given = given if isinstance(given, str) else ""
        # The printed address always gets in: a locked-out server must not lock its operator out.
        if given and self.access.is_secret(given.strip()):
            raise self._logged_in(request, "/")
        if (throttled := self._throttled(request)) is not None:
            return throttled
        if given and self.access.accepts(given):
            raise self._logged_in(request, "/")
        self.access.throttle.failed(_client(request))
        what = "the password or the address" if self.access.password else "the address"
        return self._login_page(
            request, f"that is not {what} batcher serve printed at its start", 401
        )

    async def on_shutdown(self, app: web.Application) -> None:
        """A server stopping stops the run as the CLI's Ctrl-C does: in flight finishes,
        the report is written, the rest stays pending."""
        if self.runs.stop_current("the page's server was stopped"):
            await asyncio.to_thread(self.runs.join, STOP_WAIT_S)


PAGE: web.AppKey[Page] = web.AppKey("page", Page)


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


def _guards(page: Page, options: WebOptions) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    loopback = is_loopback(options.host)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        connections = request.app[CONNECTIONS]
        connections.started(request)  # the headers are in: off the header deadline
        try:
            response = await _guarded(request, handler)
        finally:
            connections.answered(request)
        # The last net: no text this server answers holds a secret (or a piece of one).
        if isinstance(response, web.Response) and response.body is not None:
            body = response.body
            if isinstance(body, bytes | bytearray):
                text = bytes(body).decode("utf-8", "replace")
                if page.scrubber.found_in(text):
                    response.text = page.scrubber.scrub(text)
        return response

    async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback and not is_loopback(request.url.host or ""):
            raise web.HTTPMisdirectedRequest(
                text="batcher: this page answers only to 127.0.0.1 or localhost"
            )
        if request.method == "POST":
            site = request.headers.get("Sec-Fetch-Site")
            origin = request.headers.get("Origin")
            if (site is not None and site not in ("same-origin", "none")) or (
                origin is not None and origin != f"{request.scheme}://{request.host}"
            ):
                raise web.HTTPForbidden(text="batcher: a form from another site was refused (CSRF)")
        if request.path not in OPEN_PATHS and not page.has_session(request):
            if request.method in ("GET", "HEAD") and "token" in request.query:
                return page.token_login(request)
            if request.method in ("GET", "HEAD") and request.path == "/":
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(
                text="batcher: log in first: open the address batcher serve printed (with its "
                "?token=), or /login"
            )
        try:
            return await handler(request)
        except (web.HTTPException, asyncio.CancelledError, ConnectionError):
            raise  # answers of their own, and a client gone (aiohttp ends those quietly)
        except Exception as exc:  # one line on the page, never a traceback on the server
            if request.method == "GET" and request.path != "/":
                return web.Response(
                    text=f"batcher: {page._message(exc)}", status=page.status_of(exc)
                )
            return page.error_page(exc)

    return [guard]


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # Not "no-referrer": with it, browsers send `Origin: null` on the page's own forms.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cache-Control", "no-store")


def create_app(settings: Settings, options: WebOptions | None = None) -> web.Application:
    """The page as an aiohttp application (the `serve` command runs it; tests drive it).

    UsageError (exit 2) for a state directory `run` would refuse, or a bind beyond loopback
    without a password.
    """
    options = options or WebOptions()
    if not options.password and not is_loopback(options.host):
        raise UsageError(f"serve: binding {options.host} (not loopback) needs a password")
    check_state_dir(Path(settings.state.dir), options.warn)
    page = Page(settings, options)
    # Uploads are streamed to disk with their own limit; other bodies are small forms.
    app = web.Application(middlewares=_guards(page, options), client_max_size=1 << 20)
    app[PAGE] = page
    app[CONNECTIONS] = Connections(page.limits)
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(page.on_shutdown)
    app.cleanup_ctx.append(_pruning(page))
    static = Path(str(files("batcher.web") / "static"))
    app.add_routes(
        [
            web.get("/login", page.login_form),
            web.post("/login", page.login),
            web.get("/", page.index),
            web.post("/upload", page.upload),
            web.post("/plan", page.plan),
            web.post("/run", page.run),
            web.post("/stop", page.stop),
            web.post("/resume", page.resume),
            web.post("/undo", page.undo_plan),
            web.post("/undo/run", page.undo_run),
            web.get("/progress", page.progress),
            web.get("/events", page.events),
            web.get(r"/runs/{run:[0-9a-f]{16}}/report.{kind:csv|xlsx}", page.report),
            web.static("/static", static),
        ]
    )
    return app


def _pruning(page: Page) -> Callable[[web.Application], AsyncIterator[None]]:
    """Uploads and page reports past state.keep_days go at the start, then daily."""

    async def prune(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(page.prune)

        async def daily() -> None:
            while True:
                await asyncio.sleep(PRUNE_EVERY_S)
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(page.prune)

        task = asyncio.create_task(daily())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return prune
