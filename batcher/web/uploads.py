"""Uploaded files: safe names, a size limit, owner-only storage under the state directory.

An upload lives in `state.dir/uploads/<id>/<name>` (folders 0700, file 0600): `<id>` is random
(the page refers to uploads by it, and only ids of that exact shape are looked up), `<name>` is
the browser's file name, kept because the report and `batcher status` name the input by it, and
refused when it could be anything but a plain file name: a path separator, a control character,
a leading dot, or a type batcher does not read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batcher.errors import InputError, UsageError
from batcher.files import PRIVATE_DIR_MODE, open_private, private_dir
from batcher.loading import InputOptions, open_input

__all__ = [
    "ALLOWED_SUFFIXES",
    "Columns",
    "TooLargeError",
    "Upload",
    "Uploads",
    "check_name",
    "detect_columns",
]

# What `batcher.loading` reads (SPEC "Input"); `.csv.gz` etc. end in one of these after `.gz`.
ALLOWED_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".xlsx", ".xlsm")
_ID = re.compile(r"^[0-9a-f]{16}$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_MAX_NAME = 200
_META = "upload.json"


class TooLargeError(UsageError):
    """The upload is over `serve.max_upload_mb`."""


def check_name(name: str) -> str:
    """The browser's file name if it is a plain name of a type batcher reads, else UsageError.

    Never taken apart to "fix" it: a name with a path in it is refused, not trimmed, so that
    what is stored is exactly what the user sees.
    """
    shown = _CONTROL.sub("?", name)[:_MAX_NAME]
    if not name:
        raise UsageError("the upload has no file name; choose a CSV or Excel file")
    if "/" in name or "\\" in name or _CONTROL.search(name):
        raise UsageError(
            f"{shown!r}: a file name with a path separator or a control character is refused; "
            "rename the file and upload it again"
        )
    if name.startswith(".") or len(name) > _MAX_NAME:
        raise UsageError(
            f"{shown!r}: a file name must not start with a dot and must be at most {_MAX_NAME} "
            "characters; rename the file and upload it again"
        )
    if not name.lower().endswith(ALLOWED_SUFFIXES):
        raise UsageError(
            f"{shown!r}: not a CSV or Excel file; upload a .csv, .tsv, .txt, .csv.gz, .xlsx or "
            ".xlsm file"
        )
    return name


@dataclass(frozen=True)
class Upload:
    id: str
    name: str
    path: Path
    size: int
    uploaded: float


@dataclass(frozen=True)
class Columns:
    """What `batcher.loading` finds in a file, before any operation is chosen.

    `tags`/`action`/`location` are None when the file has no such column; a HighLevel contact
    export's `Tags` column holds current tags and is never the operation (`export` is True).
    """

    all: tuple[str, ...]
    id: str
    tags: str | None
    action: str | None
    location: str | None
    export: bool
    has_rows: bool


def detect_columns(
    path: Path, *, sheet: str | None = None, id_column: str | None = None, encoding: str = ""
) -> Columns:
    """The file's columns as the loader sees them; InputError/UsageError when it cannot be used.

    Three looks at the file's start through the public `open_input`: one with the operation
    given (the id and location columns, and whether the file can be read at all), one without
    tags (the tags column) and one without an action (the action column).
    """
    base = InputOptions(sheet=sheet, id_column=id_column, encoding=encoding)
    table = open_input(path, _with(base, action="add", remove_all=True))
    tags: str | None = None
    action: str | None = None
    if not table.highlevel_export:
        tags = _column(path, _with(base, action="add"), "tags")
    action = _column(path, _with(base, tags=("x",)), "action")
    return Columns(
        all=table.columns,
        id=table.id_column,
        tags=tags,
        action=action,
        location=table.location_column,
        export=table.highlevel_export,
        has_rows=table.has_rows,
    )


def _column(path: Path, options: InputOptions, role: str) -> str | None:
    """The tags or action column the loader finds with `options`; None when it finds none (a
    UsageError). A file it cannot read that way (an InputError: the tags read differently in
    the likely code pages, say) is refused."""
    try:
        table = open_input(path, options)
    except InputError:
        raise
    except UsageError:
        return None
    return table.tags_column if role == "tags" else table.action_column


def _with(options: InputOptions, **changes: Any) -> InputOptions:
    return dataclasses.replace(options, **changes)


class Uploads:
    """The uploads folder of one state directory."""

    def __init__(self, state_dir: Path, max_bytes: int, encoding: str = "") -> None:
        self.root = state_dir / "uploads"
        self.max_bytes = max_bytes
        self.encoding = encoding  # input.encoding: how a CSV upload is read

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> Upload:
        """Write an upload's bytes owner-only; refuse a bad name or more than `max_bytes`.

        The file is checked with the loader before it is kept: one that cannot be read (not
        CSV/Excel inside, no id column) is deleted and its problem raised, one line.
        """
        check_name(name)
        private_dir(self.root.parent)
        private_dir(self.root)
        upload_id = secrets.token_hex(8)
        folder = self.root / upload_id
        folder.mkdir(mode=PRIVATE_DIR_MODE)
        path = folder / name
        size = 0
        try:
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLargeError(
                            f"{name}: larger than the limit of {self.max_bytes // 2**20:,} MiB "
                            "(serve.max_upload_mb); split the file, or raise the limit"
                        )
                    view = memoryview(chunk)
                    while view:  # a local file: short writes, no need for a thread
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if size == 0:
                raise UsageError(f"{name}: the file is empty; choose the file again")
            upload = Upload(upload_id, name, path, size, time.time())
            await asyncio.to_thread(self._keep, upload)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return upload

    def _keep(self, upload: Upload) -> None:
        """Check the file with the loader, then record it (its name, size and time)."""
        detect_columns(upload.path, encoding=self.encoding)
        meta = {"name": upload.name, "size": upload.size, "uploaded": upload.uploaded}
        fd = open_private(upload.path.parent / _META, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with open(fd, "w", encoding="utf-8") as out:
            json.dump(meta, out)

    def get(self, upload_id: str) -> Upload | None:
        """The upload of that id, or None (an id of any other shape is never looked up)."""
        if not _ID.match(upload_id):
            return None
        folder = self.root / upload_id
        try:
            meta = json.loads((folder / _META).read_text(encoding="utf-8"))
            name = check_name(str(meta["name"]))
        except (OSError, ValueError, KeyError, UsageError):
            return None
        path = folder / name
        if not path.is_file():
            return None
        return Upload(upload_id, name, path, int(meta["size"]), float(meta["uploaded"]))
