"""The run's first stage: everything that can refuse it before its state is touched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from batcher.app.credentials import uses_one_credential
from batcher.app.identity import RunIdentity, identify
from batcher.app.jobs import Job, default_report_path, describe_operation, input_options
from batcher.app.sharding import missing_index
from batcher.domain.config import Settings, read_token
from batcher.domain.credentials import credentials_text
from batcher.domain.errors import NothingToSendError, UsageError
from batcher.loading import InputOptions, InputTable, open_input
from batcher.reports.formats import check_report_path
from batcher.support.stopping import Stop

__all__ = ["RECORDED", "Prepared", "prepare"]

# How a run finished from its state alone (`batcher resume`) "reads" its input.
RECORDED = "the run's state (every row was saved when the run started; the input is not read)"


@dataclass(frozen=True)
class Prepared:
    """A run that may start: its report paths, its input opened, its token, its identity, and
    how its summary names the operation and the target (`token_source`: where the token comes
    from, "" for the sandbox)."""

    started: datetime
    report_path: Path | None
    rejects_path: Path | None
    table: InputTable | None  # None: a run finished from its state alone, its input not read
    token: str | None
    identity: RunIdentity
    operation: str
    target: str
    token_source: str

    @property
    def reading(self) -> str:
        """How the input was read, in words."""
        return RECORDED if self.table is None else self.table.reading

    @property
    def has_rows(self) -> bool:
        return self.table is None or self.table.has_rows

    @property
    def target_line(self) -> str:
        """Where the run sends, and with which token, in words."""
        if not self.token_source:
            return self.target
        return f"{self.target} with the token from {self.token_source}"


def prepare(
    settings: Settings, job: Job, stop: Stop, *, dry_run: bool, rejects: Path | None
) -> Prepared:
    """Check the report and rejects paths, open the input, read the token, name the run.

    UsageError (exit 2) for what cannot go: nothing has been sent, nothing written. From the
    input's opening until it is loaded (`batcher.app.stages.load`), a signal's stop ends the run
    at once (`Stop.loading`).
    """
    if job.shards is not None and job.shard is None and not dry_run:
        raise missing_index(job.shards)
    report_path = (
        None
        if dry_run or not job.write_report
        else (job.report_path or default_report_path(job.input_path))
    )
    _check_outputs(job, report_path, rejects)
    stop.loading()  # until the input is loaded, a stop ends the run at once: nothing is sent yet
    recorded = job.resumes
    table = None
    if recorded is None:
        options = input_options(settings, job)
        table = _opened(job, options)
        identity = identify(settings, job, options)
        operation = describe_operation(job, options, table)
    else:  # finished from its state alone: the input is not read
        identity = RunIdentity(recorded.key, recorded.target)
        operation = recorded.operation
    # One credential for every location is checked before the input is read, as it always
    # was; credentials per location are checked once the file's locations are known.
    checked = not dry_run and job.sandbox is None and uses_one_credential(settings)
    token = read_token(settings) if checked else None
    target, token_source = _target(settings, job)
    return Prepared(
        started=datetime.now(UTC),
        report_path=report_path,
        rejects_path=rejects,
        table=table,
        token=token,
        identity=identity,
        operation=operation,
        target=target,
        token_source=token_source,
    )


def _opened(job: Job, options: InputOptions) -> InputTable:
    """The input, checked: NothingToSendError for a header alone, unless `allow_empty`."""
    table = open_input(job.input_path, options)
    if not table.has_rows and not job.allow_empty:
        raise NothingToSendError(
            f"{job.shown_input}: no data rows (only a header); nothing to do. Give "
            "--allow-empty if an empty file is normal (e.g. a quiet night's export)"
        )
    return table


def _target(settings: Settings, job: Job) -> tuple[str, str]:
    """Where the run sends, as its summary says it, and where its token comes from ("": the
    sandbox gives its own)."""
    if job.sandbox is not None:
        return "the embedded sandbox", ""
    return _host(settings.api.base_url.rstrip("/")), credentials_text(settings.api)


def _check_outputs(job: Job, report_path: Path | None, rejects: Path | None) -> None:
    """The report and the rejects file can be written, and replace neither the input nor each
    other."""
    if report_path is not None:
        check_report_path(report_path)
        if _same_file(report_path, job.input_path):
            raise UsageError(
                f"{report_path}: the report would replace the input file; give --report "
                "another path"
            )
    if rejects is not None:
        check_report_path(rejects)
        if _same_file(rejects, job.input_path) or (
            report_path is not None and rejects == report_path
        ):
            raise UsageError(f"{rejects}: the rejects file would replace the input or the report")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url
