"""Atomic writes: a file through a temporary name in the same directory, then ``os.replace``; a directory
through a staging directory beside it (:func:`replace_directory`).

The file is created by ``os.open`` with mode ``0o666``, which the kernel
masks with the process's umask, so the written file has the mode any other
new file of the process would have (``0o644`` under umask 022), not
``tempfile.mkstemp``'s ``0o600``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

#: ``os.open`` flags of the temporary file: created here or not at all, closed in child processes.
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

#: Random names tried before giving up (a collision of 64 random bits is not expected even once).
_ATTEMPTS = 16


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file ``.NAME.RANDOM.tmp`` beside ``path``, mode ``0o666`` less the umask, open for writing."""
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path} after {_ATTEMPTS} attempts")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` (creating its directory): either all of it or, on any error, nothing.

    The data goes to a temporary file in the same directory, is flushed to
    disk, then renamed over ``path``; on failure the temporary file is removed
    and a previous ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Writes ``text``, UTF-8 encoded, as :func:`write_bytes` does."""
    write_bytes(path, text.encode())


def replace_directory(path: str | Path, fill: Callable[[Path], None]) -> None:
    """Replaces the directory ``path`` with one that ``fill(staging)`` writes, all at once.

    ``fill`` writes into a fresh directory beside ``path`` (as readable as any
    new directory of the process, not ``mkdtemp``'s 0700); only when it has
    returned is the old directory renamed aside and the new one renamed into
    place, so until then ``path`` is untouched, and on any error the staging
    directory is removed and ``path`` is left as it was.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new."))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        fill(staging)
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        staging.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
