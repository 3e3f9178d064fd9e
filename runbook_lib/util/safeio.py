"""Reading files the user hands us (parameters, recorded evidence) without trusting them.

Regular files only (a FIFO or ``/dev/zero`` would block or never end), a size limit (a 50 MB
parameters file is a mistake, not a configuration), strict UTF-8 with the offset of the first bad
byte. Every refusal is a ``ValueError`` whose message is one line; callers wrap it in their own
error (``ParameterError``, ``EnvironmentError_``) with the file's name.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

KiB, MiB = 1024, 1024 * 1024


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The file's bytes; ``FileNotFoundError`` passes through, anything else unusable is ``ValueError``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"expected a regular file, got {_kind(st.st_mode)}")
    if st.st_size > limit:
        raise ValueError(f"expected at most {_size(limit)}, the file has {_size(st.st_size)}")
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, open() still returns
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError("expected a regular file (it changed while being opened)")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"expected at most {_size(limit)} (the file grew while being read)")
    return data


def read_text(path: str | Path, limit: int) -> str:
    """``read_bytes`` decoded as strict UTF-8 (a BOM is allowed)."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"expected UTF-8 text, byte 0x{data[exc.start]:02x} at offset {exc.start} is not") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / KiB:.0f} KiB" if n >= KiB else f"{n} bytes"
