"""Files and folders batcher trusts or creates: only the user's own, never through a symlink.

A config file names where the token goes and a state directory holds the input's emails and
phones, so, as ssh does with its own files, batcher refuses one that anyone may write or that
belongs to another user (root aside: system-wide files are root's), and warns about one that the
group may write. What batcher creates for itself (the state directory, its SQLite files, the
lock) is owner-only; a report, its summary or a rejects file is owner-only in an owner-only
folder (the state directory's), and follows the umask elsewhere (`new_file_mode`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from batcher.domain.errors import UsageError

__all__ = [
    "check_trusted",
    "discard_unfinished",
    "new_file_mode",
    "open_own_file",
    "open_private",
    "own_subdir",
    "private_dir",
    "unfinished",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def check_trusted(path: Path, what: str, warn: Callable[[str], None]) -> None:
    """Refuse (UsageError) a file or folder that others may change; warn if the group may.

    `what` names it for the message ("config file", "state directory").
    """
    try:
        info = path.stat()
    except OSError:
        return  # a missing path is reported by whoever opens it
    fix = f"chmod go-w {path}" if stat.S_ISDIR(info.st_mode) else f"chmod 600 {path}"
    if info.st_uid not in (os.getuid(), 0):
        raise UsageError(
            f"{path}: {what} belongs to another user (uid {info.st_uid}); batcher only trusts "
            "its own files: use one you own"
        )
    if info.st_mode & stat.S_IWOTH:
        raise UsageError(f"{path}: {what} is writable by anyone; fix it with `{fix}`")
    if info.st_mode & stat.S_IWGRP:
        warn(f"{path}: {what} is writable by its group; consider `{fix}`")


def own_subdir(path: Path) -> Path:
    """`path`, a folder of batcher's own inside a checked one (the state directory's `uploads`
    and `web`): created owner-only if missing; else it must be a real folder (not a link) of
    ours that nobody else may write, or UsageError."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR_MODE)
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise UsageError(
            f"{path}: not a folder of your own that only you may write (a link, another user's, "
            "or writable by others); move it away and start again"
        )
    return path


def open_own_file(folder: Path, name: str) -> int:
    """A read-only descriptor of the regular file `name` that we wrote in `folder`, or OSError.

    No link is followed, neither the folder nor the file (O_NOFOLLOW on each, the file opened
    relative to the folder's descriptor); the file must be a regular file of ours with one link
    (a hard link planted to someone else's file has two, and is not ours)."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise FileNotFoundError(name)
    where = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=where)
    finally:
        os.close(where)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_nlink != 1:
        os.close(fd)
        raise PermissionError(f"{folder / name}: not a file of our own")
    return fd


def private_dir(path: Path) -> None:
    """Create `path` (and parents) owner-only if missing; an existing one is left as it is."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)


def new_file_mode(folder: Path) -> int:
    """The mode a new file of contact data gets in `folder`: owner-only (0o600) in an
    owner-only folder of ours (the state directory, the page's folders, any 700 folder), else
    0o666 so that the umask (and a default ACL) applies as to any new file of the user's."""
    try:
        info = folder.stat()
    except OSError:
        return 0o666  # whoever creates the file reports the problem
    private = info.st_uid == os.getuid() and not info.st_mode & 0o077
    return PRIVATE_FILE_MODE if private else 0o666


def open_private(path: Path, flags: int) -> int:
    """`os.open` for a file of batcher's own: owner-only when created, never via a symlink."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)


# Files being written that must not outlive an abort (a second Ctrl-C ends the process at once).
_UNFINISHED: set[Path] = set()


@contextlib.contextmanager
def unfinished(path: Path) -> Iterator[None]:
    """While inside, `path` is a half-written file that an abort deletes."""
    _UNFINISHED.add(path)
    try:
        yield
    finally:
        _UNFINISHED.discard(path)


def discard_unfinished() -> None:
    """Delete every half-written file (called just before the process ends at once)."""
    for path in list(_UNFINISHED):
        with contextlib.suppress(OSError):
            path.unlink()
