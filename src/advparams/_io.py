"""Safe file output: atomic writes and no silent overwrites.

Outputs are written to a temporary sibling and moved into place with ``os.replace``, so
a crash or a full disk never leaves a half-written file under the final name, and an
existing file is replaced only when the caller passed ``force=True``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from advparams.errors import OutputExistsError


def check_output(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuses an existing ``path`` unless ``force``; call it before long work starts."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p} exists; pass --force (force=True) to overwrite it")
    if not p.parent.exists():
        raise OutputExistsError(f"cannot write {p}: folder {p.parent} does not exist")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, force: bool = False, private: bool = False
) -> Path:
    """Writes ``data`` to ``path`` atomically (temp file, fsync, rename).

    The file gets the usual permissions (``0o666`` less the umask), or owner-only
    ``0o600`` with ``private`` (secret keys).
    """
    p = check_output(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o600 if private else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if p.exists() and not force:  # appeared meanwhile
            raise OutputExistsError(f"{p} exists; pass --force (force=True) to overwrite it")
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yields a temporary folder; on success it replaces ``path`` in one rename.

    With ``force`` an existing folder or file at ``path`` is moved aside first and removed
    only after the new one is in place; if anything fails it is put back, so nothing is
    lost.
    """
    p = check_output(path, force=force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        yield tmp
        backup: Path | None = None
        if p.exists():
            if not force:
                raise OutputExistsError(f"{p} exists; pass --force (force=True) to overwrite it")
            backup = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".old", dir=p.parent))
            backup.rmdir()
            os.replace(p, backup)
        try:
            os.replace(tmp, p)
        except BaseException:
            if backup is not None:
                os.replace(backup, p)
            raise
        if backup is not None:
            if backup.is_dir():
                shutil.rmtree(backup, ignore_errors=True)
            else:
                backup.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
