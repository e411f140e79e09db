"""Uploaded files: names shown safely, size limits, owner-only storage, kept for a while.

An upload lives in `state.dir/uploads/<id>/` (folders 0700, files 0600): `<id>` is random (the
page refers to uploads by it, and only ids of that exact shape are looked up); the file is
stored under a short name of our own (`input.csv`, `input.xlsx`...: the loader reads the type
from it), and the browser's file name is kept in `upload.json` for display only: a name the file
system cannot hold (150 `é` are 300 bytes, past NAME_MAX's 255) or a name with bidi controls
(U+202E shows `gnp.csv` as `vsc.png`) never reaches it. A name is refused when it cannot be
meant as a plain file name: a path separator, a control character (NUL included), or a type
batcher does not read; what it shows of a name has its control and bidirectional characters
spelled out (`batcher.support.printable.escaped`: `\\u202e`).

Uploads go when they are older than `state.keep_days` (`prune`), and all of them together may
not pass `serve.max_total_upload_mb` (the upload that would is refused, 413).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batcher.app.inputs import detect_columns
from batcher.domain.errors import UsageError
from batcher.support.files import PRIVATE_DIR_MODE, open_own_file, open_private, own_subdir
from batcher.support.printable import escaped

__all__ = [
    "ALLOWED_SUFFIXES",
    "TooLargeError",
    "Upload",
    "Uploads",
    "check_name",
]

# What `batcher.loading` reads (SPEC "Input"); `.csv.gz` etc. end in one of these after `.gz`.
ALLOWED_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".xlsx", ".xlsm")
_ID = re.compile(r"^[0-9a-f]{16}$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_MAX_NAME = 200
_META = "upload.json"
# The stored file's own name: `input` and the upload's type.
_STORED = "input"
_STORED_NAMES = frozenset(f"{_STORED}{suffix}" for suffix in ALLOWED_SUFFIXES)


class TooLargeError(UsageError):
    """The upload is over `serve.max_upload_mb`, or the uploads kept would pass
    `serve.max_total_upload_mb`."""


def _suffix(name: str) -> str:
    lower = name.lower()
    return next(s for s in sorted(ALLOWED_SUFFIXES, key=len, reverse=True) if lower.endswith(s))


def check_name(name: str) -> str:
    """The browser's file name if it is a plain name of a type batcher reads, else UsageError.

    Never taken apart to "fix" it: a name with a path in it is refused, not trimmed, so that
    what is shown is exactly what the user chose.
    """
    display = escaped(name[:_MAX_NAME])
    if not name:
        raise UsageError("the upload has no file name; choose a CSV or Excel file")
    if "/" in name or "\\" in name or _CONTROL.search(name):
        raise UsageError(
            f"{display!r}: a file name with a path separator or a control character is refused; "
            "rename the file and upload it again"
        )
    if len(name) > _MAX_NAME:
        raise UsageError(
            f"{display!r}: a file name must be at most {_MAX_NAME} characters; rename the file "
            "and upload it again"
        )
    if name.lower().endswith(".xls"):
        # The CLI's explanation (batcher.loading), in the page's words.
        raise UsageError(
            f"{display!r}: old binary Excel format (.xls): open it in Excel and save it as .xlsx "
            "(File, Save As, Excel Workbook), then upload that"
        )
    if not name.lower().endswith(ALLOWED_SUFFIXES):
        raise UsageError(
            f"{display!r}: not a CSV or Excel file; upload a .csv, .tsv, .txt, .csv.gz, .xlsx or "
            ".xlsm file"
        )
    return name


@dataclass(frozen=True)
class Upload:
    id: str
    name: str  # the browser's file name, for display (`shown`) only
    path: Path  # the stored file, under a name of our own
    size: int
    uploaded: float


class Uploads:
    """The uploads folder of one state directory."""

    def __init__(
        self, state_dir: Path, max_bytes: int, max_total_bytes: int, encoding: str = ""
    ) -> None:
        self.root = state_dir / "uploads"
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.encoding = encoding  # input.encoding: how a CSV upload is read
        self._storing = 0  # bytes of the uploads being written now

    async def store(self, name: str, chunks: AsyncIterator[bytes]) -> Upload:
        """Write an upload's bytes owner-only; refuse a bad name, more than `max_bytes`, or more
        than the total kept may take.

        The file is checked with the loader before it is kept: one that cannot be read (not
        CSV/Excel inside, no id column) is deleted and its problem raised, one line.
        """
        check_name(name)
        own_subdir(self.root)
        upload_id = secrets.token_hex(8)
        folder = self.root / upload_id
        folder.mkdir(mode=PRIVATE_DIR_MODE)
        path = folder / f"{_STORED}{_suffix(name)}"
        kept = self.total_bytes()
        size = 0
        try:
            fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    self._storing += len(chunk)
                    self._check_room(name, size, kept + self._storing)
                    view = memoryview(chunk)
                    while view:  # a local file: short writes, no need for a thread
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if size == 0:
                raise UsageError(f"{escaped(name)}: the file is empty; choose the file again")
            upload = Upload(upload_id, name, path, size, time.time())
            await asyncio.to_thread(self._keep, upload)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self._storing -= size
        return upload

    def _check_room(self, name: str, size: int, total: int) -> None:
        if size > self.max_bytes:
            raise TooLargeError(
                f"{escaped(name)}: larger than the limit of {self.max_bytes // 2**20:,} MiB "
                "(serve.max_upload_mb); split the file, or raise the limit"
            )
        if total > self.max_total_bytes:
            raise TooLargeError(
                f"{escaped(name)}: the uploads kept would pass {self.max_total_bytes // 2**20:,} "
                "MiB (serve.max_total_upload_mb); they are deleted after state.keep_days days, "
                "or raise the limit"
            )

    def _keep(self, upload: Upload) -> None:
        """Check the file with the loader, then record it (its name, size and time)."""
        detect_columns(upload.path, encoding=self.encoding)
        meta = {
            "name": upload.name,
            "file": upload.path.name,
            "size": upload.size,
            "uploaded": upload.uploaded,
        }
        fd = open_private(upload.path.parent / _META, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with open(fd, "w", encoding="utf-8") as out:
            json.dump(meta, out)

    def get(self, upload_id: str) -> Upload | None:
        """The upload of that id, or None (an id of any other shape is never looked up)."""
        if not _ID.match(upload_id):
            return None
        folder = self.root / upload_id
        try:
            meta = _read_meta(folder)
            name = str(meta["name"])
            # An upload kept before stored names were ours was stored under its own name.
            stored = str(meta.get("file", name))
            if stored not in _STORED_NAMES:
                check_name(stored)
            path = folder / stored
            os.close(open_own_file(folder, stored))
            return Upload(upload_id, name, path, int(meta["size"]), float(meta["uploaded"]))
        except (OSError, ValueError, KeyError, TypeError, UsageError):
            return None

    def total_bytes(self) -> int:
        """The bytes the uploads kept take (each folder's files, links not followed)."""
        total = 0
        if self.root.is_dir():
            for folder in self.root.iterdir():
                with contextlib.suppress(OSError):
                    if folder.is_dir() and not folder.is_symlink():
                        total += sum(p.lstat().st_size for p in folder.iterdir())
        return total

    def prune(
        self, keep_days: int, *, now: float | None = None, keep: Collection[str] = ()
    ) -> list[str]:
        """Delete the uploads older than `keep_days` days (but those in `keep`: a run uses them);
        their ids. A folder whose record cannot be read goes by its own time."""
        horizon = (time.time() if now is None else now) - keep_days * 86_400
        gone: list[str] = []
        if not self.root.is_dir():
            return gone
        for folder in self.root.iterdir():
            if folder.name in keep or not _ID.match(folder.name):
                continue
            when = horizon  # kept when nothing tells its age
            try:
                when = float(_read_meta(folder)["uploaded"])
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    when = folder.lstat().st_mtime
            if when < horizon:
                _remove(folder)
                gone.append(folder.name)
        return gone


def _read_meta(folder: Path) -> dict[str, Any]:
    fd = open_own_file(folder, _META)
    with open(fd, encoding="utf-8") as meta:
        found: dict[str, Any] = json.load(meta)
    return found


def _remove(folder: Path) -> None:
    """Delete `folder` (a link is unlinked, never followed)."""
    if folder.is_symlink():
        folder.unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
