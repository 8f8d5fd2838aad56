"""One retrain (or rollback) of a model name at a time: an exclusive ``flock`` on ``NAME/.retrain.lock``.

The lock is taken without waiting: a second process fails at once with `LockedError`, naming the holder (pid,
host, since) written into the file. The kernel releases the lock when its holder exits, even on a crash, so a stale
lock file never blocks anyone; the file itself stays (removing it would race with a process about to lock it).
Hidden, it is not a version (`pdm.saving.versions` skips dot names).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with model_lock(d / "pump"):
...     try:
...         with model_lock(d / "pump"):
...             pass
...     except LockedError as exc:
...         print("busy:", "another retrain" in str(exc))
busy: True
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pdm.errors import PdmError

LOCK_NAME = ".retrain.lock"


class LockedError(PdmError):
    """Another process holds the model name's retrain lock."""


@contextlib.contextmanager
def model_lock(name_dir: Path | str, what: str = "retrain") -> Iterator[Path]:
    """Hold the lock of ``name_dir`` (created if missing) for the ``with`` block."""
    name_dir = Path(name_dir)
    name_dir.mkdir(parents=True, exist_ok=True)
    path = name_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", errors="replace").strip() or "unknown holder"
            raise LockedError(f"{name_dir}: another retrain or rollback holds {path} ({holder}); expected none: "
                              "wait for it to finish") from None
        since = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
