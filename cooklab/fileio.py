"""Writing files safely: atomic files, output folders that are never clobbered, one writer per folder.

* ``atomic_write``: a file is either complete or untouched, never half-written;
* ``check_output_folder`` / ``check_output_file``: a run writes into a new folder, or into an earlier
  run of cooklab when the user says so; never into a folder of other files, never to a path of the
  wrong kind (checked before any model loads);
* ``folder_lock``: a lock file with the host and PID of the run that writes a folder, so that a
  second run on the same folder is refused instead of doing all the work again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from cooklab.errors import ConfigError


def atomic_write(path: str | os.PathLike[str], content: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write ``content`` to ``path`` so that the file is either complete or untouched.

    ``content`` is bytes, text (written as UTF-8) or a function that writes to a binary
    file object. The data goes to a temporary file next to ``path`` which then replaces
    ``path`` with ``os.replace``; if anything fails the temporary file is removed and the
    error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            if callable(content):
                content(file)
            else:
                file.write(content.encode("utf-8") if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def check_output_folder(
    folder: str | os.PathLike[str],
    *,
    overwrite: bool,
    holds_previous: Callable[[Path], bool],
    what: str,
    option: str = "overwrite=True (on the command line: --overwrite)",
    ignore: tuple[str, ...] = (),
) -> bool:
    """Check that cooklab may write into ``folder``; returns True when it holds an earlier run to be replaced.

    A folder cooklab may write into is one that does not exist yet, an empty one, or one that
    ``holds_previous`` recognises as an earlier cooklab ``what`` when ``overwrite`` is given. Any
    other folder is refused with a ``ConfigError`` naming the fix, before any model loads: a path
    that is a file, a folder of other files (never touched), an earlier run without ``overwrite``
    (``option`` is how the user says so: ``--overwrite`` or ``overwrite=True``). Entries named in
    ``ignore`` do not make a folder non-empty (an evaluation's stale lock file).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"{folder} is a file, but the {what} goes into a folder: give a folder path (a new one, or an "
            f"earlier {what} of cooklab)."
        )
    if not folder.exists() or all(entry.name in ignore for entry in folder.iterdir()):
        return False
    if not holds_previous(folder):
        raise ConfigError(
            f"{folder} already holds files that are not an earlier {what} of cooklab: give a new folder (cooklab "
            "never writes into a folder of other files)."
        )
    if not overwrite:
        raise ConfigError(
            f"{folder} holds an earlier {what} of cooklab: pass {option} to replace its files (nothing else in the "
            "folder is touched), or give a new folder."
        )
    return True


def check_output_file(path: str | os.PathLike[str], *, what: str, option: str, example: str) -> Path:
    """Refuse (``ConfigError``) an output file path that is an existing folder; returns the path.

    ``what`` names the file (``"the plan"``), ``option`` the parameter or flag that gave it,
    ``example`` a file name to suggest inside that folder (``"plan.json"``).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{option} {path} is a folder, but {what} is written to a file: give a file path, e.g. {path / example}."
        )
    return path


def _lock_holder(path: Path) -> tuple[str, int] | None:
    """(host, PID) written in a lock file, or None when it cannot be read."""
    try:
        host, pid = path.read_text(encoding="utf-8").split()
        return host, int(pid)
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    """True when a process with this PID runs on this machine."""
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], *, what: str, name: str = ".cooklab.lock") -> Iterator[Path]:
    """Hold the lock file ``folder/name`` while the block runs, so that a second run on ``folder`` is refused.

    The file is created exclusively (``O_CREAT | O_EXCL``) and holds this run's host and PID; it
    is removed when the block ends. A lock whose process no longer runs on this host (a run killed
    with ``kill -9``) is stale and taken over. A lock held by a running process, by another host,
    or unreadable is refused with a ``ConfigError`` naming the holder and how to clear a stale lock.
    ``what`` names the run in the message (``"cooklab evaluate"``).
    """
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = f"{socket.gethostname()} {os.getpid()}\n"
    while True:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None and holder[0] == socket.gethostname() and not _running(holder[1]):
                path.unlink(missing_ok=True)  # its run was killed: stale, removed, then taken
                continue
            who = "an unreadable lock" if holder is None else f"process {holder[1]} on {holder[0]}"
            raise ConfigError(
                f"another {what} is writing into {Path(folder)} ({who}, lock file {path}): wait for it to finish, "
                f"or, if no such run is alive (it was killed on another machine), delete {path} and run again."
            ) from None
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(mine)
        break
    try:
        yield path
    finally:
        if _lock_holder(path) == (socket.gethostname(), os.getpid()):
            path.unlink(missing_ok=True)
