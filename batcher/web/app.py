"""The page's server: routes, the guards every request passes, and the server's lifetime.

Guards (SPEC "The web page", DESIGN "web/"):
- bound to loopback, the `Host` header must name loopback too (a page elsewhere that rebinds its
  own name to 127.0.0.1 cannot read this one);
- bound to any other address, every request needs the password (HTTP Basic, any user name) from
  the environment variable that `serve.password_env` names; without one the server does not
  start;
- every POST carries the page's CSRF token (a form field, or the `X-CSRF-Token` header), and a
  browser's `Origin`/`Sec-Fetch-Site` must say the request comes from the page itself;
- the API token is never read here: the library reads it in the run's thread; messages shown
  are scrubbed of it, and a last net scrubs every text answer;
- one run at a time: the state directory's lock (as for the CLI), checked before starting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import BodyPartReader, web

from batcher.config import Settings
from batcher.crash import write_crash_file
from batcher.errors import BatcherError, StateLockedError, UsageError
from batcher.jobs import Job
from batcher.ledger import RunInfo, StateLock, runs_in
from batcher.secrets import Scrubber
from batcher.web.page import PageState, progress_json, render
from batcher.web.runs import (
    ActiveRun,
    Operation,
    PlanView,
    Runs,
    UndoPlan,
    plan,
    undo_plan,
    undo_problem,
)
from batcher.web.uploads import TooLargeError, Upload, Uploads, detect_columns

__all__ = ["WebOptions", "check_bind", "create_app", "is_loopback_host"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# How often the progress stream sends numbers (seconds).
PROGRESS_EVERY_S = 0.5
# How long a stopping server waits for the run's in-flight requests and report (seconds).
STOP_WAIT_S = 60.0
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_host(host: str) -> bool:
    """Whether `host` (an address or name to bind, or a Host header's name) is this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str, environ: Mapping[str, str] | None = None) -> str:
    """The page's password ("" on loopback without one); UsageError when binding elsewhere
    without a password (SPEC "The web page": binding another address requires one)."""
    env = os.environ if environ is None else environ
    name = settings.serve.password_env
    password = env.get(name, "") if name else ""
    if not password and not is_loopback_host(host):
        where = (
            f"the environment variable {name} is empty or not set"
            if name
            else "serve.password_env names no environment variable"
        )
        raise UsageError(
            f"serve: binding {host} (not loopback) needs a password, and {where}; set "
            "serve.password_env to the name of a variable holding one, or bind 127.0.0.1"
        )
    return password


@dataclass(frozen=True)
class WebOptions:
    """How the page was started: `config_file` and `sandbox` go into every job, as for `run`."""

    config_file: Path | None = None
    sandbox: bool = False
    host: str = "127.0.0.1"
    password: str = ""


class Page:
    """The routes of the page, over one state directory."""

    def __init__(self, settings: Settings, options: WebOptions) -> None:
        self.settings = settings
        self.options = options
        self.state_dir = Path(settings.state.dir)
        self.csrf = secrets.token_urlsafe(32)
        self.scrubber = Scrubber(os.environ.get(settings.api.token_env))
        self.uploads = Uploads(self.state_dir, settings.serve.max_upload_mb * 2**20)
        self.runs = Runs(settings, self.scrubber)

    # -- helpers -------------------------------------------------------------------------

    def _target(self) -> str:
        if self.options.sandbox:
            return "the embedded sandbox"
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
        upload = state.upload
        if upload is not None and state.columns is None:
            with contextlib.suppress(BatcherError):
                state.columns = detect_columns(upload.path)
        return state

    def _page(self, state: PageState, status: int = 200) -> web.Response:
        return web.Response(text=render(state), status=status, content_type="text/html")

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, BatcherError):
            return self.scrubber.scrub(str(exc))
        crash = write_crash_file(self.state_dir, exc, self.scrubber)
        where = f"details in {crash}" if crash is not None else "no crash file could be written"
        return self.scrubber.scrub(
            f"internal error ({type(exc).__name__}: {exc}); {where}; please report this"
        )

    def _upload(self, upload_id: str) -> Upload:
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise UsageError("that upload is not in the state directory any more; upload again")
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
        return self._page(self._state(upload=upload, notice=notice, operation=operation))

    async def upload(self, request: web.Request) -> web.Response:
        """multipart: the `csrf` field first (the form puts it first), then the `file`."""
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return self._page(self._state(error="send the file as a form upload"), 400)
        given: str | None = request.headers.get("X-CSRF-Token")
        upload: Upload | None = None
        try:
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "csrf":
                    given = given or (await part.read(decode=True)).decode("utf-8", "replace")
                elif part.name == "file":
                    self.check_csrf(given)  # before a byte of the file is stored

                    async def chunks(p: BodyPartReader = part) -> AsyncIterator[bytes]:
                        while chunk := await p.read_chunk(1 << 16):
                            yield chunk

                    upload = await self.uploads.store(part.filename or "", chunks())
                    break
        except TooLargeError as exc:
            return self._page(self._state(error=self._message(exc)), 413)
        except BatcherError as exc:
            return self._page(self._state(error=self._message(exc)), 400)
        if upload is None:
            self.check_csrf(given)
            return self._page(self._state(error="no file in the upload; choose a file"), 400)
        raise web.HTTPSeeOther(f"/?upload={upload.id}&new=1")

    async def _form(self, request: web.Request) -> tuple[Upload, Operation]:
        form = await request.post()
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        upload_id = form.get("upload")
        return self._upload(upload_id if isinstance(upload_id, str) else ""), self._operation(form)

    async def plan(self, request: web.Request) -> web.Response:
        upload, operation = await self._form(request)
        try:
            job = operation.job(
                self.settings,
                upload.path,
                config_file=self.options.config_file,
                sandbox=self.options.sandbox,
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
        return self._page(self._state(upload=upload, operation=operation, plan=view))

    async def run(self, request: web.Request) -> web.Response:
        upload, operation = await self._form(request)
        try:
            self._check_free()

            def make_job(report: Path) -> Job:
                return operation.job(
                    self.settings,
                    upload.path,
                    config_file=self.options.config_file,
                    sandbox=self.options.sandbox,
                    report_path=report,
                )

            self.runs.start(make_job, upload.name, upload.id, asdict(operation))
        except StateLockedError as exc:
            return self._page(
                self._state(upload=upload, operation=operation, error=self._message(exc)), 409
            )
        except Exception as exc:
            return self._page(
                self._state(upload=upload, operation=operation, error=self._message(exc)), 400
            )
        raise web.HTTPSeeOther(f"/?upload={upload.id}#progress")

    def _undoable(self, given: object) -> RunInfo:
        """The finished run, with its report, that the form names (its state file's name)."""
        name = given if isinstance(given, str) else ""
        runs = runs_in(self.state_dir) if name and self.state_dir.is_dir() else []
        info = next((info for info in runs if info.path.name == name), None)
        if info is None:
            raise UsageError(
                "that run is not in the state directory (any more); reload the page and choose "
                "a run from the list"
            )
        if problem := undo_problem(info):
            raise UsageError(problem)
        return info

    def _check_free(self) -> None:
        if self.runs.busy():
            raise StateLockedError(
                f"{self.state_dir}: a run started from this page is still going; wait for it "
                "to finish or stop it"
            )
        lock = StateLock(self.state_dir)
        lock.acquire()  # refused now, with the CLI's message, if another run holds it
        lock.release()

    async def undo_plan(self, request: web.Request) -> web.Response:
        """The undo's plan for a finished run (sends nothing), with the button to start it."""
        form = await request.post()
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
        return self._page(self._state(undo_plan=view))

    async def undo_run(self, request: web.Request) -> web.Response:
        """Start the undo of a finished run (after its plan was shown) as a page run."""
        form = await request.post()
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        try:
            info = self._undoable(form.get("run"))
            self._check_free()
            self.runs.start_undo(
                info,
                config_file=self.options.config_file,
                sandbox=self.options.sandbox,
            )
        except StateLockedError as exc:
            return self._page(self._state(error=self._message(exc)), 409)
        except Exception as exc:
            return self._page(self._state(error=self._message(exc)), 400)
        raise web.HTTPSeeOther("/#progress")

    async def stop(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.check_csrf(request.headers.get("X-CSRF-Token") or form.get("csrf"))
        self.runs.stop_current("stopped from the page")
        current = self.runs.current
        where = f"?upload={current.record.upload_id}" if current is not None else ""
        raise web.HTTPSeeOther(f"/{where}#progress")

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
        kind = request.match_info["kind"]
        path = self.runs.report_file(request.match_info["run"], kind)
        if path is None:
            raise web.HTTPNotFound(text="batcher: no such report")
        # An ASCII name for old clients, the real one (RFC 6266/5987) for the others.
        fallback = "".join(
            c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in path.name
        )
        return web.FileResponse(
            path,
            headers={
                "Content-Disposition": f'attachment; filename="{fallback}"; '
                f"filename*=UTF-8''{quote(path.name, safe='')}",
                "Content-Type": "text/csv; charset=utf-8"
                if kind == "csv"
                else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            },
        )

    async def on_shutdown(self, app: web.Application) -> None:
        """A server stopping stops the run as the CLI's Ctrl-C does: in flight finishes,
        the report is written, the rest stays pending."""
        if self.runs.stop_current("the page's server was stopped"):
            await asyncio.to_thread(self.runs.join, STOP_WAIT_S)


PAGE: web.AppKey[Page] = web.AppKey("page", Page)


def _guards(page: Page, options: WebOptions) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    loopback = is_loopback_host(options.host)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback and not is_loopback_host(request.url.host or ""):
            raise web.HTTPMisdirectedRequest(
                text="batcher: this page answers only to 127.0.0.1 or localhost"
            )
        if options.password:
            _check_password(request, options.password)
        if request.method == "POST":
            site = request.headers.get("Sec-Fetch-Site")
            origin = request.headers.get("Origin")
            if (site is not None and site not in ("same-origin", "none")) or (
                origin is not None and origin != f"{request.scheme}://{request.host}"
            ):
                raise web.HTTPForbidden(text="batcher: a form from another site was refused (CSRF)")
        response = await handler(request)
        # The last net: no text this server answers holds the API token (or a piece of it).
        if isinstance(response, web.Response) and response.body is not None:
            body = response.body
            if isinstance(body, bytes | bytearray):
                text = bytes(body).decode("utf-8", "replace")
                if page.scrubber.found_in(text):
                    response.text = page.scrubber.scrub(text)
        return response

    return [guard]


def _check_password(request: web.Request, password: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    given = ""
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            given = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
    if not hmac.compare_digest(given.encode(), password.encode()):
        raise web.HTTPUnauthorized(
            text="batcher: this page needs its password",
            headers={"WWW-Authenticate": 'Basic realm="batcher", charset="UTF-8"'},
        )


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
    """The page as an aiohttp application (the `serve` command runs it; tests drive it)."""
    options = options or WebOptions()
    if not options.password and not is_loopback_host(options.host):
        raise UsageError(f"serve: binding {options.host} (not loopback) needs a password")
    page = Page(settings, options)
    # Uploads are streamed to disk with their own limit; other bodies are small forms.
    app = web.Application(middlewares=_guards(page, options), client_max_size=1 << 20)
    app[PAGE] = page
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(page.on_shutdown)
    static = Path(str(files("batcher.web") / "static"))
    app.add_routes(
        [
            web.get("/", page.index),
            web.post("/upload", page.upload),
            web.post("/plan", page.plan),
            web.post("/run", page.run),
            web.post("/stop", page.stop),
            web.post("/undo", page.undo_plan),
            web.post("/undo/run", page.undo_run),
            web.get("/progress", page.progress),
            web.get("/events", page.events),
            web.get(r"/runs/{run:[0-9a-f]{16}}/report.{kind:csv|xlsx}", page.report),
            web.static("/static", static),
        ]
    )
    return app
