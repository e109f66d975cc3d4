"""Atomic file writing: a file is either complete or untouched, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


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
