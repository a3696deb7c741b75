"""Safe file output: atomic writes, no silent overwrites, and ``--force`` that replaces
only what the same command made.

* A file is written into an unnamed temporary file (Linux ``O_TMPFILE``) in the
  destination's folder and linked into place once complete and flushed, so a process
  killed mid-write leaves nothing behind, not even a hidden partial copy of a secret key.
  Where ``O_TMPFILE`` is not available a hidden named sibling is used and removed on every
  exit that Python sees.
* A new file is linked with ``link()``, which refuses an existing name, so two writers
  never overwrite each other; an existing file is replaced with ``rename()`` only under
  ``force``, and only when the caller's ``accept`` check says it is a file of the same kind.
* A folder is written to a hidden temporary sibling and renamed into place; with ``force``
  it is *exchanged* with the old folder in one step (``renameat2(RENAME_EXCHANGE)``), so
  the path always holds the old or the new folder, and the old one is removed afterwards.
  A folder made by a command carries a marker file (:data:`MARKER`) naming that command;
  ``force`` replaces a folder only when the marker names the same command.
* :func:`advparams.files.pairs.install_folder_with_key` places a locked model and its key
  so that no instant leaves a locked model at its path without its key at the key's path.

Every output path is resolved (``~``, symbolic links, ``..``) before any existence check.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from advparams.errors import OutputExistsError

MARKER = ".advparams-output.json"
"""Marker file in every folder a command writes (checkpoints, run folders): names the command."""
BACKUP_SUFFIX = ".advparams-backup"
STAGING_SUFFIX = ".advparams-staging"
"""Suffix of the hidden copy of a previous output kept while a replacement is under way."""


def resolve(path: str | os.PathLike[str]) -> Path:
    """The absolute path with ``~``, symbolic links and ``..`` resolved (the file need not exist)."""
    return Path(path).expanduser().resolve()


EXISTS = "{} exists; pass --force to overwrite it"


def _not_replaceable(p: Path, what: str) -> str:
    return (
        f"{p} exists and is not {what}, the only thing --force replaces here: remove it yourself or choose another path"
    )


def read_marker(path: str | os.PathLike[str]) -> str | None:
    """The command named by the marker file in folder ``path``, or None."""
    m = Path(path) / MARKER
    try:
        st = os.lstat(m)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
            return None
        body = json.loads(m.read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(body, dict) and body.get("format") == "advparams-output" and isinstance(body.get("command"), str):
        return str(body["command"])
    return None


def write_marker(folder: str | os.PathLike[str], made_by: str) -> None:
    """Writes the marker that lets ``--force`` of ``made_by`` replace ``folder`` later."""
    body = json.dumps({"format": "advparams-output", "command": made_by}) + "\n"
    (Path(folder) / MARKER).write_text(body)


def check_output(
    path: str | os.PathLike[str],
    *,
    force: bool,
    made_by: str | None = None,
    accept: Callable[[Path], bool] | None = None,
    what: str | None = None,
) -> Path:
    """Checks, before long work starts, that ``path`` may be written; returns it resolved.

    Args:
        path: the output file or folder.
        force: replacing an existing output is allowed.
        made_by: for folders: the command whose marker an existing folder must carry.
        accept: for files: says whether an existing file may be replaced by this output.
        what: for files: what ``accept`` accepts, for the error ("a query file").

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is False, or it exists and is not
            what this command makes, or its folder does not exist, or an interrupted
            replacement left a backup beside it.
    """
    p = resolve(path)
    if not p.parent.is_dir():
        raise OutputExistsError(f"cannot write {p}: folder {p.parent} does not exist")
    try:
        name_max = os.pathconf(p.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    # The hidden temporary and backup names add up to 40 bytes to the output's name.
    if len(os.fsencode(p.name)) + 40 > name_max:
        raise OutputExistsError(f"cannot write {p}: its name is longer than {name_max - 40} bytes")
    backup = _backup_path(p)
    if os.path.lexists(backup):
        raise OutputExistsError(
            f"an interrupted command left the previous {p.name} at {backup}; move it back or remove it first"
        )
    if not os.path.lexists(p):
        return p
    if not force:
        raise OutputExistsError(EXISTS.format(p))
    if p.is_dir():
        if made_by is not None and read_marker(p) != made_by:
            raise OutputExistsError(_not_replaceable(p, f"a folder made by `advparams {made_by}`"))
    elif not p.is_file():
        raise OutputExistsError(f"{p} exists and is not a regular file; it is never replaced")
    elif accept is not None and not accept(p):
        raise OutputExistsError(_not_replaceable(p, what or "a file of the kind this command writes"))
    elif accept is None and made_by is not None:
        raise OutputExistsError(f"{p} is a file, where `advparams {made_by}` writes a folder; remove it yourself")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _backup_path(p: Path) -> Path:
    return p.parent / f".{p.name}{BACKUP_SUFFIX}"


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link_fd(fd: int, dest: Path) -> bool:
    """Names the unnamed file ``fd`` as ``dest`` (which must not exist); False where the
    system does not allow it (then the caller writes a named temporary file instead)."""
    try:
        os.link(f"/proc/self/fd/{fd}", dest, follow_symlinks=True)
        return True
    except FileExistsError:
        raise
    except OSError:
        pass
    try:  # linkat(AT_EMPTY_PATH): allowed to privileged processes
        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, at_empty_path = -100, 0x1000
        if libc.linkat(fd, b"", at_fdcwd, os.fsencode(dest), at_empty_path) == 0:
            return True
        if ctypes.get_errno() == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest))
    except (OSError, AttributeError) as exc:
        if isinstance(exc, FileExistsError):
            raise
    return False


class _PendingFile:
    """A complete file not yet at its name: an unnamed ``O_TMPFILE`` inode where the system
    can name one later, else a hidden named sibling (removed on every exit Python sees)."""

    def __init__(self, folder: Path, name: str, data: bytes, mode: int) -> None:
        self.folder, self.name, self.data, self.mode = folder, name, data, mode
        self.fd = -1
        self.tmp: Path | None = None
        flag = getattr(os, "O_TMPFILE", 0)
        if flag:
            try:
                self.fd = os.open(folder, flag | os.O_WRONLY | os.O_CLOEXEC, mode)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise
        if self.fd < 0:
            self._named()
        else:
            self._fill(self.fd)

    def _fill(self, fd: int) -> None:
        try:
            os.fchmod(fd, self.mode)
            view = memoryview(self.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            self.discard()
            raise

    def _named(self) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.folder)
        self.fd, self.tmp = fd, Path(tmp)
        self._fill(fd)

    def link(self, dest: Path) -> None:
        """Gives the file the name ``dest``, which must not exist (``FileExistsError`` if it does)."""
        if self.tmp is None and not _link_fd(self.fd, dest):
            os.close(self.fd)
            self.fd = -1
            self._named()
        if self.tmp is not None:
            os.link(self.tmp, dest)  # refuses an existing name, like linkat above
            self.tmp.unlink()
            self.tmp = None
        _fsync_dir(dest.parent)

    def replace(self, dest: Path) -> None:
        """Puts the file at ``dest`` in one rename, replacing what is there."""
        side = dest.parent / f".{dest.name}.advparams-new"
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        self.link(side)
        try:
            os.replace(side, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                side.unlink()
            raise
        _fsync_dir(dest.parent)

    def discard(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            self.tmp = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    force: bool = False,
    private: bool = False,
    accept: Callable[[Path], bool] | None = None,
    what: str | None = None,
) -> Path:
    """Writes ``data`` to ``path`` atomically (see the module docstring).

    The file gets the usual permissions (``0o666`` less the umask), or owner-only
    ``0o600`` with ``private`` (secret keys). With ``force`` an existing file is replaced,
    only if ``accept`` (when given) accepts it (``what`` says what it accepts).
    """
    p = check_output(path, force=force, accept=accept, what=what)
    if p.is_dir():
        raise OutputExistsError(f"{p} is a folder; a file is never written over a folder")
    pending = _PendingFile(p.parent, p.name, data, 0o600 if private else 0o666 & ~_umask())
    try:
        try:
            pending.link(p)
        except FileExistsError:
            if not force:
                raise OutputExistsError(EXISTS.format(p)) from None
            pending.replace(p)
    finally:
        pending.discard()
    return p


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two existing paths in one step (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _staged(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f".{glob.escape(dest.name)}.*{STAGING_SUFFIX}"))


def _new_temp_folder(p: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=STAGING_SUFFIX, dir=p.parent))


def _replace_folder(tmp: Path, p: Path) -> None:
    """Puts complete folder ``tmp`` at ``p``, replacing what is there, never leaving ``p`` empty
    where the system can exchange paths."""
    if not os.path.lexists(p):
        os.rename(tmp, p)
        return
    if _exchange(tmp, p):
        _remove(tmp)  # now holds the old folder
        return
    backup = _backup_path(p)
    os.rename(p, backup)
    try:
        os.rename(tmp, p)
    except BaseException:
        os.rename(backup, p)
        raise
    _remove(backup)


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], *, force: bool = False, made_by: str | None = None
) -> Iterator[Path]:
    """Yields a temporary folder; on success it is put at ``path`` in one step.

    With ``made_by`` the folder gets the marker naming that command, and ``force`` replaces
    an existing folder only if its marker names the same command. If anything fails the
    old folder stays where it was and the temporary one is removed.
    """
    p = check_output(path, force=force, made_by=made_by)
    for stale in _staged(p):  # left by a process that was killed while writing this output
        _remove(stale)
    tmp = _new_temp_folder(p)
    try:
        yield tmp
        if made_by is not None:
            write_marker(tmp, made_by)
        if os.path.lexists(p) and not force:
            raise OutputExistsError(EXISTS.format(p))
        _replace_folder(tmp, p)
        _fsync_dir(p.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(dest: str | os.PathLike[str], *, made_by: str) -> Iterator[Path]:
    """A hidden temporary folder beside ``dest`` (same file system, so it can be renamed into
    place), marked as made by ``made_by``; removed on exit unless it was moved away."""
    p = resolve(dest)
    tmp = _new_temp_folder(p)
    try:
        write_marker(tmp, made_by)
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
