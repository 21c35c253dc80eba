"""The one reader for every file convlab takes in that a user or another run could have put there:
config files, a run directory's ``summary.json``, ``config.toml`` and ``model.pt``, weights files.

Regular files only (a pipe named ``summary.json`` would block the reader forever, ``/dev/zero``
never ends), of at most a size cap, each failure one message that names the file. The file is
opened first and then checked (``fstat`` of the open file, not of the name), so nothing can be
swapped in between; a pipe is opened without blocking. torch-free.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from convlab.errors import ConfigError

MiB = 1 << 20


class FileReadError(ConfigError):
    """A file that cannot be read as asked: missing, not a regular file, too large, unreadable."""


def _size(limit: int) -> str:
    if limit >= 1 << 30:
        return f"{limit / (1 << 30):g} GiB"
    return f"{limit / MiB:g} MiB" if limit >= MiB else f"{limit:,} bytes"


def open_regular(path: str | Path, *, limit: int, what: str, hint: str = "") -> BinaryIO:
    """``path`` opened for reading, once it is known to be a regular file of at most ``limit``
    bytes; else a FileReadError naming it as ``what`` (``config file``, ``--weights file``), with
    ``hint`` (what the file should be) after a file that is no file or too large."""
    path = Path(path)
    hint = f"; {hint}" if hint else ""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileReadError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise FileReadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileReadError(f"{what} is a directory: {path}")
        if not stat.S_ISREG(info.st_mode):
            raise FileReadError(f"{what} {path} is not a regular file (a device or a pipe){hint}")
        if info.st_size > limit:
            raise FileReadError(f"{what} {path} is over {_size(limit)} ({info.st_size:,} bytes){hint}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path, *, limit: int, what: str, hint: str = "") -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (see :func:`open_regular`)."""
    with open_regular(path, limit=limit, what=what, hint=hint) as f:
        try:
            data = f.read(limit + 1)  # a file that grew after it was checked is cut here
        except OSError as exc:
            raise FileReadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise FileReadError(f"{what} {path} is over {_size(limit)}{'; ' + hint if hint else ''}")
    return data
