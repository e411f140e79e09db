"""The one page, rendered on the server: plain HTML, every value escaped, no inline script.

The page works without JavaScript (forms post, the server answers with the page); `app.js` adds
drag and drop and live progress. Content-Security-Policy allows only this server's own files.
File names are shown with their invisible characters escaped (`batcher.web.uploads.shown`): a
bidi control (U+202E) would show `gnp.csv` as `vsc.png`. `render_login` is the login page.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from batcher import RunInfo, __version__
from batcher.app.inputs import Columns
from batcher.app.result import RunResult
from batcher.app.undo import undone_report
from batcher.domain.models import Row, Status
from batcher.support.printable import escaped
from batcher.web.runs import (
    ActiveRun,
    Operation,
    PlanView,
    RunRecord,
    UndoPlan,
    page_words,
    resumable,
    state_name,
    undo_problem,
)
from batcher.web.uploads import ALLOWED_SUFFIXES, Upload

__all__ = ["PageState", "render", "render_login"]

_STATUS_NAMES = {
    Status.PENDING: "to send",
    Status.SUCCESS: "success (already settled)",
    Status.ERROR: "error (already settled)",
    Status.FAILED: "failed (sent again)",
}


@dataclass
class PageState:
    """Everything one rendering of the page shows."""

    csrf: str
    target: str
    state_dir: str
    max_upload_mb: int
    sandbox: bool
    error: str = ""
    notice: str = ""
    upload: Upload | None = None
    columns: Columns | None = None
    operation: Operation = field(default_factory=Operation)
    plan: PlanView | None = None
    current: ActiveRun | None = None
    runs: Sequence[RunInfo] = ()
    records: Sequence[RunRecord] = ()
    undo_plan: UndoPlan | None = None
    # The id of the element that gets the focus: the next thing to do after a POST ("": none).
    focus: str = ""


# The embedded sandbox starts empty for each run: an undo there cannot see the run's tags.
SANDBOX_UNDO_NOTE = (
    "Sandbox: every run gets a new embedded sandbox, so an undo here cannot see the tags the "
    "run set (it shows how an undo goes, not what it restores)."
)


def e(value: object) -> str:
    return escape(str(value), quote=True)


def shown_name(value: str) -> str:
    """A file name as shown: control and bidirectional characters spelled out, then
    HTML-escaped."""
    return e(escaped(value))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _focus(state: PageState, element: str) -> str:
    """` autofocus` on the element the page was drawn to go on with (WCAG 2.4.3: after a form,
    the next thing to do has the focus, not the top of the page)."""
    return " autofocus" if state.focus == element else ""


def _csrf(state: PageState) -> str:
    return f'<input type="hidden" name="csrf" value="{e(state.csrf)}">'


def _operation_fields(state: PageState) -> str:
    """The chosen operation as hidden fields: the Start form sends what the plan showed."""
    op = state.operation
    upload_id = state.upload.id if state.upload is not None else ""
    fields = {"upload": upload_id, **{k: getattr(op, k) for k in Operation.__dataclass_fields__}}
    return "".join(
        f'<input type="hidden" name="{e(name)}" value="{e(value)}">'
        for name, value in fields.items()
    )


def _messages(state: PageState) -> str:
    out = []
    if state.error:
        out.append(
            f'<p class="error" role="alert" id="error" tabindex="-1"{_focus(state, "error")}>'
            f"{e(state.error)}</p>"
        )
    if state.notice:
        out.append(f'<p class="notice" role="status" id="notice">{e(state.notice)}</p>')
    return "".join(out)


def _upload_section(state: PageState) -> str:
    accept = ",".join(sorted({"." + suffix.rsplit(".", 1)[-1] for suffix in ALLOWED_SUFFIXES}))
    return f"""
<section aria-labelledby="h-upload">
  <h2 id="h-upload">1. The file</h2>
  <form id="upload-form" method="post" action="/upload" enctype="multipart/form-data">
    {_csrf(state)}
    <div class="drop" id="drop">
      <label for="file">Drop a CSV or Excel file here, or choose one</label>
      <input type="file" id="file" name="file" accept="{e(accept)}" required
             aria-describedby="file-help">
      <p id="file-help" class="help">.csv, .tsv, .txt, .csv.gz, .xlsx or .xlsm, at most
        {state.max_upload_mb:,} MiB. It is kept in the state directory, readable by you only.</p>
    </div>
    <button type="submit" id="upload-button">Upload</button>
  </form>
</section>"""


def _operation_section(state: PageState) -> str:
    upload, columns, op = state.upload, state.columns, state.operation
    if upload is None or columns is None:
        return ""

    def col(name: str | None, none: str) -> str:
        return f"<code>{e(name)}</code>" if name else f'<span class="muted">{e(none)}</span>'

    tags_note = (
        "the file is a HighLevel contact export: its Tags column holds the contacts' current "
        "tags and is only copied to the report"
        if columns.export
        else "none"
    )
    found = f"""
    <table class="facts" aria-label="Columns found in the file">
      <tr><th scope="row">contact id</th><td>{col(columns.id, "none")}</td></tr>
      <tr><th scope="row">tags</th><td>{col(columns.tags, tags_note)}</td></tr>
      <tr><th scope="row">action</th><td>{col(columns.action, "none")}</td></tr>
      <tr><th scope="row">location</th><td>{
        col(columns.location, "none (the location below, or the configured one)")
    }</td></tr>
      <tr><th scope="row">all columns</th><td>{
        ", ".join(f"<code>{e(c)}</code>" for c in columns.all)
    }</td></tr>
    </table>"""

    focus_action = state.focus == "action" and not columns.problem
    # "The file's action column" is the default only for a file that has one.
    chosen = op.action if op.action != "file" or columns.action else "add"

    def radio(value: str, label: str, disabled: bool = False) -> str:
        checked = " checked" if chosen == value else ""
        off = " disabled" if disabled else ""
        focus = " autofocus" if focus_action and chosen == value else ""
        return (
            f'<label class="choice"><input type="radio" name="action" value="{value}"'
            f"{checked}{off}{focus}> {e(label)}</label>"
        )

    file_action = (
        f"the file's {columns.action} column" if columns.action else "the file's action column"
    )
    # What the person must choose before the file can be read: the field for it gets the focus.
    fix = ""
    if columns.problem:
        fix = "encoding" if columns.encodings else "id_column" if columns.all else "sheet"
    focus = state.focus if state.focus != "action" or not fix else fix
    problem = (
        f'<p class="error" id="column-problem" role="alert">{e(page_words(columns.problem))}</p>'
        if columns.problem
        else ""
    )
    if columns.sheets:
        chosen_sheet = op.sheet or columns.sheets[0]
        sheet_options = "".join(
            f'<option value="{e(name)}"{" selected" if name == chosen_sheet else ""}>'
            f"{e(name)}</option>"
            for name in columns.sheets
        )
        sheet = f"""<div class="field"><label for="sheet">Sheet</label>
      <select id="sheet" name="sheet"{" autofocus" if focus == "sheet" else ""}
        aria-describedby="sheet-help">{sheet_options}</select>
      <p class="help" id="sheet-help">The workbook's visible sheets; the plan reads the one
        chosen.</p></div>"""
    else:
        sheet = f'<input type="hidden" name="sheet" value="{e(op.sheet)}">'
    if columns.encodings:
        chosen_encoding = op.encoding or columns.encodings[0][0]
        readings = "".join(
            f'<label class="choice"><input type="radio" name="encoding" value="{e(name)}"'
            f"{' checked' if name == chosen_encoding else ''}"
            f"{' autofocus' if focus == 'encoding' and name == chosen_encoding else ''}>"
            f" {e(name)}: <q>{e(escaped(text))}</q></label>"
            for name, text in columns.encodings
        )
        encoding = f"""<fieldset id="encodings"><legend>Encoding: which reading is right?</legend>
      {readings}</fieldset>"""
    else:
        encoding = f'<input type="hidden" name="encoding" value="{e(op.encoding)}">'
    chosen_id = op.id_column or columns.id
    if chosen_id:
        placeholder = ""
    elif columns.all:  # not found: the person names it (the form cannot go without it)
        placeholder = '<option value="" selected disabled>choose the contact id column</option>'
    else:  # the header is not read yet (a sheet to choose): found in the sheet chosen
        placeholder = '<option value="" selected>found in the sheet chosen</option>'
    options = placeholder + "".join(
        f'<option value="{e(c)}"{" selected" if c == chosen_id else ""}>{e(c)}</option>'
        for c in columns.all
    )
    tags_placeholder = (
        f"empty: the file's {columns.tags} column" if columns.tags else "e.g. vip, newsletter"
    )
    return f"""
<section aria-labelledby="h-operation">
  <h2 id="h-operation">2. The operation</h2>
  <p>File <strong id="upload-name">{shown_name(upload.name)}</strong> ({upload.size:,} bytes,
     uploaded {e(_when(upload.uploaded))}).</p>
  {problem}
  {found}
  <form id="plan-form" method="post" action="/plan">
    {_csrf(state)}
    <input type="hidden" name="upload" value="{e(upload.id)}">
    <fieldset>
      <legend>Action for every row</legend>
      {radio("file", f"Use {file_action}", disabled=columns.action is None and not columns.all)}
      {radio("add", "Add tags")}
      {radio("remove", "Remove tags")}
      {radio("remove-all", "Remove all tags")}
    </fieldset>
    <div class="field"><label for="tags">Tags (comma-separated)</label>
      <input id="tags" name="tags" value="{e(op.tags)}" placeholder="{e(tags_placeholder)}"></div>
    <div class="field"><label for="location_id">Location id</label>
      <input id="location_id" name="location_id" value="{e(op.location_id)}"
             placeholder="{
        e(
            "empty: the file's " + columns.location + " column"
            if columns.location
            else "empty: the configured location"
        )
    }"></div>
    {sheet}
    {encoding}
    <div class="field"><label for="id_column">Contact id column</label>
      <select id="id_column" name="id_column"{" autofocus" if focus == "id_column" else ""}{
        " required" if columns.all else ""
    }>{options}</select></div>
    {_mapping_fields(state)}
    <button type="submit" id="plan-button">See the plan</button>
    <p class="help">The plan reads the whole file and sends nothing.</p>
  </form>
</section>"""


# The columns a person may choose from the header (`Operation`'s field, label, what it is for).
_MAPPED = (
    ("tags_column", "Tags column", "the tags of each row, when no tags are given above"),
    ("action_column", "Action column", "each row's add or remove, with the file's action"),
    ("location_column", "Location column", "each row's location, when none is given above"),
)


def _mapping_fields(state: PageState) -> str:
    """A list of the header's columns for each of the tags, action and location columns, the
    one batcher detects (or none) first: for a file that calls them otherwise."""
    columns, op = state.columns, state.operation
    if columns is None or not columns.all:
        return ""
    fields = []
    for (name, label, use), found in zip(_MAPPED, columns.detected, strict=True):
        chosen = getattr(op, name)
        default = f"detected: {found}" if found else "(none)"
        options = f'<option value=""{" selected" if not chosen else ""}>{e(default)}</option>'
        options += "".join(
            f'<option value="{e(c)}"{" selected" if c == chosen else ""}>{e(c)}</option>'
            for c in columns.all
        )
        fields.append(
            f"""<div class="field"><label for="{name}">{label}</label>
      <select id="{name}" name="{name}" aria-describedby="{name}-help">{options}</select>
      <p class="help" id="{name}-help">The file's column of {e(use)}.</p></div>"""
        )
    return f"""<fieldset id="columns"><legend>Columns</legend>
      {"".join(fields)}</fieldset>"""


def _plan_section(state: PageState) -> str:
    plan = state.plan
    if plan is None:
        return ""
    result = plan.result
    rows = sum(result.counts.values())
    lines = "".join(
        f'<tr><th scope="row">{e(_STATUS_NAMES.get(status, status.value))}</th>'
        f'<td class="num" data-status="{e(status.value)}">{result.counts[status]:,}</td></tr>'
        for status in Status
        if result.counts[status]
    )
    credentials = {c.location_id: c.text for c in result.credentials}
    own = "the sandbox's own"  # a sandbox run: the sandbox's token reaches its locations
    per_location = "".join(
        f"<tr><td><code>{e(location)}</code></td><td class='num'>{requests:,}</td>"
        f"<td>{e(credentials.get(location, own))}</td></tr>"
        for location, requests in result.per_location[:10]
    )
    more = len(result.per_location) - 10
    invalid = ""
    if plan.invalid:
        body = "".join(
            f"<tr><td class='num'>{row.row:,}</td><td class='num'>{row.line:,}</td>"
            f"<td><code>{e(row.contact_id)}</code></td><td>{e(row.message)}</td></tr>"
            for row in plan.invalid
        )
        invalid = f"""
  <h3>The first invalid rows (never sent)</h3>
  <table id="invalid-rows">
    <caption>Each row's reason; the report lists them all.</caption>
    <thead><tr><th scope="col">row</th><th scope="col">line</th>
      <th scope="col">contact id</th><th scope="col">why</th></tr></thead>
    <tbody>{body}</tbody>
  </table>"""
    resumed = (
        '<p class="notice">An unfinished run of this file and operation exists: rows it '
        "settled are not sent again.</p>"
        if result.resumed
        else ""
    )
    busy = state.current is not None and not state.current.done
    # Held back only while another run goes on: the page lets it go when that run ends.
    held = " disabled data-after-run" if busy else ""
    start = f"""
  <form id="run-form" method="post" action="/run">
    {_csrf(state)}{_operation_fields(state)}
    <button type="submit" id="run-button" class="primary"{
        held if plan.to_send > 0 else " disabled"
    }{_focus(state, "run-button")}>
      Start: send {plan.to_send:,} rows to {e(result.target)}</button>
  </form>"""
    return f"""
<section aria-labelledby="h-plan" id="plan">
  <h2 id="h-plan">3. The plan</h2>
  <p id="plan-summary">{rows:,} rows: {e(result.operation)}.</p>
  {f'<p id="plan-reading">Read as {e(page_words(result.reading))}.</p>' if result.reading else ""}
  {resumed}
  <table id="plan-counts" aria-label="Rows by status">{lines}</table>
  <p id="plan-requests">{result.plan.requests:,} requests over {result.locations:,}
    location{"s" if result.locations != 1 else ""}; at least
    {e(_duration(result.least_seconds))} at the rate limit.</p>
  {
        f'<table aria-label="Requests per location"><thead><tr><th scope="col">location</th>'
        f'<th scope="col">requests</th><th scope="col">credential</th></tr></thead>'
        f"<tbody>{per_location}</tbody></table>"
        if per_location
        else ""
    }
  {f"<p>... and {more:,} more locations</p>" if more > 0 else ""}
  {_first_rows_table(plan)}
  {_operations_table(result)}
  {_schedule(result)}
  {invalid}
  {start}
</section>"""


def _first_rows_table(plan: PlanView) -> str:
    """The first rows as batcher reads them: what each will send, or why it will not."""
    if not plan.first:
        return ""

    def status(row: Row) -> str:
        if row.status is Status.INVALID:
            return f"invalid: {row.message}"
        return "to send" if row.status is None else row.status.value

    body = "".join(
        f"<tr><td class='num' data-label='row'>{row.row:,}</td>"
        f"<td data-label='contact id'><code>{e(row.contact_id)}</code></td>"
        f"<td data-label='action'>{e('remove' if row.remove_all else row.action)}</td>"
        f"<td data-label='tags'>{'all tags' if row.remove_all else e(', '.join(row.tags))}</td>"
        f"<td data-label='location'><code>{e(row.location_id)}</code></td>"
        f"<td data-label='status'>{e(status(row))}</td></tr>"
        for row in plan.first
    )
    return f"""
  <table id="first-rows" class="reflow">
    <caption>The first {len(plan.first):,} rows as batcher reads them (a contact's repeated rows
      are found when the whole file is read: see the counts above)</caption>
    <thead><tr><th scope="col">row</th><th scope="col">contact id</th><th scope="col">action</th>
      <th scope="col">tags</th><th scope="col">location</th><th scope="col">status</th></tr></thead>
    <tbody>{body}</tbody>
  </table>"""


def _schedule(result: RunResult) -> str:
    """The drip and the window, when the last request is due, and the warning that a large run
    without a drip may set off the CRM's automations for every contact (as `plan` says)."""
    schedule = result.schedule
    if schedule is None or not schedule.locations:
        return ""
    parts = []
    if schedule.drip is not None:
        parts.append(f"Drip: {schedule.drip.describe()} per location")
    if schedule.window is not None:
        parts.append(f"window {schedule.window.text}")
    last = schedule.last
    paced = (
        f'<p id="plan-schedule">{e("; ".join(parts))}: the last request is due '
        f"{e(schedule.when(last))}.</p>"
        if schedule.paced and last is not None
        else ""
    )
    warning = (
        f'<p class="notice" id="plan-automations">{schedule.contacts:,} contacts and no drip: '
        "each tag change may start the CRM&#39;s automations (&quot;Tag Added&quot; workflows, "
        "webhooks) for every contact, all at once. To spread them out, set "
        "<code>limits.contacts_per_hour</code> (or <code>limits.drip</code>) in the config.</p>"
        if schedule.warn
        else ""
    )
    return paced + warning


def _operations_table(result: RunResult) -> str:
    """The distinct operations to send (action and tag set), most rows first."""
    if not result.operations:
        return ""
    body = "".join(
        f"<tr><td><code>{e(str(operation))}</code></td><td class='num'>{operation.rows:,}</td></tr>"
        for operation in result.operations
    )
    more = result.operation_count - len(result.operations)
    return f"""
  <table id="plan-operations" aria-label="The distinct operations to send">
    <caption>{result.operation_count:,} distinct operation{
        "s" if result.operation_count != 1 else ""
    }{f", the {len(result.operations)} most frequent" if more > 0 else ""}</caption>
    <thead><tr><th scope="col">operation</th><th scope="col">rows</th></tr></thead>
    <tbody>{body}</tbody>
  </table>"""


def _undo_plan_section(state: PageState) -> str:
    view = state.undo_plan
    if view is None:
        return ""
    run, source = view.result.run, view.result.source
    busy = state.current is not None and not state.current.done
    can_start = view.to_send > 0 and not busy
    resumed = (
        '<p class="notice">An unfinished undo of this report exists: operations it settled '
        "are not sent again.</p>"
        if run.resumed
        else ""
    )
    sandbox = (
        f'<p class="notice" id="undo-sandbox">{e(SANDBOX_UNDO_NOTE)}</p>' if state.sandbox else ""
    )
    return f"""
<section aria-labelledby="h-undo" id="undo-plan">
  <h2 id="h-undo">Undo: the plan</h2>
  <p id="undo-summary">Undo the run of <strong>{shown_name(_input_name(state, view.info))}</strong>
    ({e(view.info.operation)}, {e(view.info.created.replace("T", " "))}) from its report
    <code>{shown_name(Path(view.info.report).name)}</code>: remove the tags it added, add back
    the tags it removed. Changes made since by others are not looked at.</p>
  {resumed}
  <table id="undo-counts" class="facts" aria-label="What the undo sends">
    <tr><th scope="row">rows to undo</th><td class="num" id="undo-rows">{source.undone:,} of
      {source.rows:,}</td></tr>
    <tr><th scope="row">operations</th><td class="num" id="undo-operations">
      {source.operations:,} ({view.to_send:,} to send)</td></tr>
    <tr><th scope="row">requests</th><td class="num" id="undo-requests">
      {run.plan.requests:,}</td></tr>
    <tr><th scope="row">locations</th><td class="num" id="undo-locations">
      {run.locations:,}</td></tr>
    <tr><th scope="row">rows with nothing to undo</th><td class="num" id="undo-nothing">
      {source.nothing:,}</td></tr>
    <tr><th scope="row">uncertain rows left alone</th><td class="num" id="undo-skipped">
      {source.skipped:,}</td></tr>
  </table>
  <p>At least {e(_duration(run.least_seconds))} at the rate limit, to {e(run.target)}. The rows
    with nothing to undo, and the uncertain ones (an answer was lost: what the run did to them
    is not known for sure), are in the undo's report, saying why and what to do.</p>
  {sandbox}
  <form id="undo-run-form" method="post" action="/undo/run">
    {_csrf(state)}
    <input type="hidden" name="run" value="{e(view.info.path.name)}">
    <button type="submit" id="undo-run-button" class="primary"{"" if can_start else " disabled"}{
        _focus(state, "undo-run-button")
    }>
      Undo: send {view.to_send:,} operations to {e(run.target)}</button>
  </form>
</section>"""


def _progress_section(state: PageState) -> str:
    current = state.current
    if current is None:
        return ""
    snap = current.snapshot()
    record = current.record
    counts = "".join(
        f'<tr><th scope="row">{e(name)}</th><td class="num" data-status="{e(name)}">'
        f"{count:,}</td></tr>"
        for name, count in snap["counts"].items()
        if count
    )
    downloads = ""
    if current.done and record.report_csv:
        downloads = (
            f'<a id="report-csv" href="/runs/{e(record.id)}/report.csv" download>'
            "Download the report (CSV)</a>"
        )
        if current.writing_xlsx:
            downloads += (
                ' <span class="muted" id="xlsx-pending">· the XLSX copy is being written; '
                "it appears here when ready</span>"
            )
        elif record.report_xlsx:
            downloads += (
                f' · <a id="report-xlsx" href="/runs/{e(record.id)}/report.xlsx" download>XLSX</a>'
            )
        elif record.xlsx_note:
            downloads += f' <span class="muted">(no XLSX: {e(record.xlsx_note)})</span>'
    stop = (
        f"""<form method="post" action="/stop" id="stop-form">{_csrf(state)}
      <input type="hidden" name="upload" value="{e(state.upload.id if state.upload else "")}">
      <button type="submit" id="stop-button"{" disabled" if current.stop.requested else ""}{
            _focus(state, "stop-button")
        }>
        Stop (requests in flight finish; the rest stays pending)</button></form>"""
        if not current.done
        else ""
    )
    return f"""
<section aria-labelledby="h-progress" id="progress" data-run="{e(record.id)}"
         data-state="{e(snap["state"])}" data-xlsx="{e(snap["xlsx"])}"
         data-next="/?upload={e(record.upload_id)}&amp;run={e(record.id)}#progress">
  <h2 id="h-progress">The run</h2>
  <p>{shown_name(record.input_name)}: <span id="run-operation">{
        e(record.operation or "starting")
    }</span></p>
  <progress id="bar" aria-label="Requests done" max="{max(snap["requests_planned"], 1)}"
            value="{snap["requests_done"]}"></progress>
  <p id="progress-text" aria-live="polite">{e(_progress_text(snap))}</p>
  <p id="run-message" role="status">{e(snap["message"])}</p>
  <table id="run-counts" aria-label="Rows by status">{counts}</table>
  {stop}
  <p id="downloads">{downloads}</p>
</section>"""


def _progress_text(snap: dict[str, Any]) -> str:
    """The same words app.js writes, so that the page reads the same before and after JS."""
    text = (
        f"{snap['state']}: {snap['requests_done']:,} of {snap['requests_planned']:,} requests, "
        f"about {snap['rows_done']:,} of {snap['rows_to_send']:,} rows, "
        f"{snap['rows_per_s']:,} rows/s, {snap['elapsed_s']:,} s"
    )
    if snap["eta_s"] is not None:
        text += f", about {_duration(snap['eta_s'])} left"
    return text


def _reports_by_run(runs: Sequence[RunInfo], records: Sequence[RunRecord]) -> dict[str, RunRecord]:
    """The newest page run (with a report) of each run in the state directory.

    A page run belongs to the newest run of the same input and operation created before it
    started (a second's slack: the ledger is created just after the page starts the run); a page
    run that continued an unfinished run belongs to that one.
    """
    found: dict[str, RunRecord] = {}
    for record in sorted(records, key=lambda r: r.started):
        if not record.report_csv or record.finished is None:
            continue
        started = dt.datetime.fromtimestamp(record.started + 2, dt.UTC)
        owner = None
        for info in runs:
            if record.undoes:
                # An undo's input is generated (and gone): it names the report it undoes.
                if undone_report(info.input) != Path(record.undoes).name:
                    continue
            elif (info.input, info.operation) != (record.input_path, record.operation):
                continue
            with contextlib.suppress(ValueError):
                created = dt.datetime.strptime(info.created, "%Y-%m-%dT%H:%M:%SZ")
                if created.replace(tzinfo=dt.UTC) <= started:
                    owner = info
        if owner is not None:
            found[str(owner.path)] = record
    return found


def _input_name(state: PageState, info: RunInfo) -> str:
    """The input's name as its user knows it: an upload's own name (it is stored under one of
    ours), else the file's."""
    for record in state.records:
        if record.input_path == info.input and record.input_name:
            return record.input_name
    return info.input.rsplit("/", 1)[-1]


def _runs_section(state: PageState) -> str:
    reports = _reports_by_run(state.runs, state.records)
    rows = []
    for info in reversed(state.runs):
        counts = ", ".join(f"{n:,} {name}" for name, n in info.counts.items() if n) or "—"
        record = reports.get(str(info.path))
        report = (
            f'<a href="/runs/{e(record.id)}/report.csv" download>CSV</a>'
            if record is not None
            # Its latest complete report (not downloadable: not started from this page).
            else f"<span title='{e(info.report)}'>{e(Path(info.report).name)}</span>"
            if info.report
            else '<span class="muted" title="not started from this page">—</span>'
        )
        problem = undo_problem(info)
        saved = resumable(info, list(state.records))
        busy = state.current is not None and not state.current.done
        resume = (
            f"""<form method="post" action="/resume" class="undo-form">{_csrf(state)}
        <input type="hidden" name="run" value="{e(info.path.name)}">
        <button type="submit" class="resume"{" disabled" if busy else ""}
          aria-label="Resume this run with its saved choices: see its plan first">Resume…</button>
        </form>"""
            if saved is not None
            else ""
        )
        undo = resume + (
            f'<button type="button" class="undo" disabled aria-disabled="true" '
            f'title="{e(problem)}" aria-label="Undo: {e(problem)}">Undo</button>'
            if problem
            else f"""<form method="post" action="/undo" class="undo-form">{_csrf(state)}
        <input type="hidden" name="run" value="{e(info.path.name)}">
        <button type="submit" class="undo" aria-label="Undo this run: see its plan first"
          >Undo…</button></form>"""
        )
        undone = undone_report(info.input)
        shown_as = f"undo of {undone}" if undone else _input_name(state, info)
        # data-label: on a narrow screen each cell is a line that names its column.
        rows.append(
            f"<tr><td class='when' data-label='started'>{e(info.created.replace('T', ' '))}</td>"
            f"<td data-label='input' title='{shown_name(info.input)}'>{shown_name(shown_as)}</td>"
            f"<td data-label='operation'>{e(info.operation)}</td>"
            f"<td data-label='target'>{e(info.target)}</td>"
            f"<td data-label='state' class='state-{e(info.state)}'>"
            f"{e(state_name(info.state))}"
            f"{', undone' if info.undone is not None else ''}</td>"
            f"<td data-label='rows'>{e(counts)}</td>"
            f"<td data-label='report'>{report}</td><td data-label='next'>{undo}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="8" class="muted">No runs yet.</td></tr>'
    return f"""
<section aria-labelledby="h-runs" id="history">
  <h2 id="h-runs">Runs in the state directory</h2>
  <p class="help">Undo takes a finished run back from its own records (not from a report file
    that may have changed since): it shows the undo's plan first, and sends nothing until you
    confirm; rows marked uncertain are left alone.{
        " " + e(SANDBOX_UNDO_NOTE) if state.sandbox else ""
    }</p>
  <table id="runs" class="reflow">
    <thead><tr><th scope="col">started</th><th scope="col">input</th>
      <th scope="col">operation</th><th scope="col">target</th><th scope="col">state</th>
      <th scope="col">rows</th><th scope="col">report</th><th scope="col">next</th></tr></thead>
    <tbody>{body}</tbody>
  </table>
</section>"""


def render(state: PageState) -> str:
    """The whole page."""
    badge = '<span class="badge">sandbox</span>' if state.sandbox else ""
    sections: Iterable[str] = (
        _messages(state),
        _upload_section(state),
        _operation_section(state),
        _plan_section(state),
        _undo_plan_section(state),
        _progress_section(state),
        _runs_section(state),
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{e(state.csrf)}">
<title>batcher — contact tags</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header>
  <h1>batcher <small>contact tags, in bulk</small> {badge}</h1>
  <p class="muted">Sends to <strong id="target">{e(state.target)}</strong> · state directory
    <code>{e(state.state_dir)}</code> · version {e(__version__)}</p>
</header>
<main>
{"".join(sections)}
</main>
</body>
</html>
"""


def progress_json(snapshot: dict[str, Any]) -> str:
    return json.dumps({**snapshot, "text": _progress_text(snapshot)})


def render_login(*, error: str = "", password: bool = False) -> str:
    """The login page: the start secret (the address batcher serve printed), or the password."""
    what = (
        "the password, or the address batcher serve printed"
        if password
        else ("the address batcher serve printed (or its secret)")
    )
    message = f'<p class="error" role="alert" id="error">{e(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>batcher — log in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header><h1>batcher <small>contact tags, in bulk</small></h1></header>
<main>
<section aria-labelledby="h-login">
  <h2 id="h-login">Log in</h2>
  {message}
  <p>This page can change contacts with the server's token, so only whoever started
    <code>batcher serve</code> may use it. Open the address it printed (it ends in
    <code>?token=</code> and a secret made at each start), or paste it here.</p>
  <form id="login-form" method="post" action="/login">
    <div class="field"><label for="secret">{e(what[:1].upper() + what[1:])}</label>
      <input id="secret" name="secret" type="password" autocomplete="current-password" required
             autofocus></div>
    <button type="submit" id="login-button" class="primary">Log in</button>
  </form>
</section>
</main>
</body>
</html>
"""
