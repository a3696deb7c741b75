"""Bounded reading of the files people share: regular files only, size caps, safe parsers.

Every file the toolkit accepts from a user (keys, sealed keys, checkpoints, watermark
keys, user tables, evaluation configs, data batches) is read through :func:`read_file`:

* only a *regular* file is read: a FIFO, a device (also behind a symbolic link, such as
  ``/dev/zero``), a socket or a folder is refused before a byte is read, and opening never
  blocks (``O_NONBLOCK``);
* each kind of file has a size cap (:data:`LIMITS`, listed in ``docs/formats.md``); a
  larger file is refused from its size, and at most cap + 1 bytes are ever read, so a file
  that grows while it is read cannot exhaust memory either;
* JSON is parsed by :func:`parse_json`: nesting depth and node count bounded, duplicate
  object keys, ``NaN``/``Infinity`` and numbers that overflow a float refused;
* the tree a YAML or JSON parser returns is bounded by :func:`check_tree` (YAML aliases
  are counted as often as they are used, so an alias bomb is refused).

Every refusal is the caller's error class (a :class:`~advparams.errors.AdvParamsError`)
with one sentence that names the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advparams.errors import AdvParamsError

KiB, MiB, GiB = 1024, 1024**2, 1024**3

LIMITS: dict[str, int] = {
    "key": 1 * GiB,  # plain or sealed key file
    "checkpoint-description": 1 * MiB,  # model.json
    "checkpoint-weights": 16 * GiB,  # model.safetensors (memory-mapped, never read whole)
    "user-table": 16 * MiB,
    "config": 1 * MiB,  # evaluation config (YAML)
    "passphrase": 64 * KiB,
    "cifar-batch": 64 * MiB,  # the official batches are 30-31 MB
    "gtsrb-csv": 16 * MiB,
    "image": 16 * MiB,  # one GTSRB PPM image
    "idx-gz": 64 * MiB,  # a Fashion-MNIST IDX file, compressed
    "idx": 128 * MiB,  # ... and decompressed (the training images are 47 MB)
    "rows": 1 * GiB,  # a run folder's results.jsonl
    "run-record": 16 * MiB,  # a run folder's config and bookkeeping files
}
"""Size cap in bytes for every kind of file the toolkit reads: the house's here, each
family's own registered by the module that reads it (:func:`register_limit`)."""


def register_limit(kind: str, size: int) -> int:
    """Adds a family's file kind to :data:`LIMITS` (from the module that reads such files);
    returns ``size``. Registering a kind again with the same size does nothing.

    Raises:
        ValueError: ``kind`` already has another limit.
    """
    if LIMITS.setdefault(kind, size) != size:
        raise ValueError(f"file kind {kind!r} already has the limit {LIMITS[kind]}")
    return size


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in any JSON or YAML document."""
MAX_TREE_NODES = 1_000_000
"""Most values (counted with repetition) accepted in one parsed document."""


def _fail(error: type[AdvParamsError], message: str) -> AdvParamsError:
    return error(message)


def open_regular(
    path: str | os.PathLike[str], *, what: str, limit: int, error: type[AdvParamsError] = AdvParamsError
) -> tuple[int, int]:
    """Opens ``path`` for reading if it is a regular file of at most ``limit`` bytes.

    Returns:
        ``(fd, size)``; the caller closes ``fd``.

    Raises:
        error: missing, unreadable, not a regular file, or over the cap.
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise _fail(error, f"{what} {p} does not exist") from None
    except IsADirectoryError:
        raise _fail(error, f"{what} {p} is a folder, not a file") from None
    except OSError as exc:
        raise _fail(error, f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _fail(error, f"{what} {p} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise _fail(error, f"{what} {p} is not a regular file (a device, FIFO or socket is never read)")
        if st.st_size > limit:
            raise _fail(
                error, f"{what} {p} is {st.st_size} bytes, over the limit of {_size(limit)} for this kind of file"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def read_file(
    path: str | os.PathLike[str], *, what: str, limit: int, error: type[AdvParamsError] = AdvParamsError
) -> bytes:
    """Reads a whole regular file of at most ``limit`` bytes (see the module docstring).

    Args:
        path: the file; a symbolic link is followed, but must end at a regular file.
        what: how the error calls the file ("key file", "config file", ...).
        limit: the size cap in bytes (a value of :data:`LIMITS`).
        error: the error class raised.
    """
    fd, size = open_regular(path, what=what, limit=limit, error=error)
    chunks: list[bytes] = []
    total = 0
    step = size + 1  # the whole file in one read, so that joining copies nothing; then 1 MiB steps
    try:
        while True:
            chunk = os.read(fd, min(step, limit + 1 - total))
            step = 1 << 20
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _fail(error, f"{what} {os.fspath(path)} grew over the limit of {_size(limit)} while it was read")
    except OSError as exc:
        raise _fail(error, f"cannot read {what} {os.fspath(path)}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def check_regular(
    path: str | os.PathLike[str], *, what: str, limit: int, error: type[AdvParamsError] = AdvParamsError
) -> int:
    """Checks that ``path`` is a regular file within ``limit`` for a reader that opens it
    itself (memory-mapped weights); returns its size."""
    fd, size = open_regular(path, what=what, limit=limit, error=error)
    os.close(fd)
    return size


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"the key {k[:40]!r} appears twice in one object")
        out[k] = v
    return out


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large")
    return value


def _no_constant(text: str) -> Any:
    raise _Refused(f"{text} is not a number JSON allows")


def parse_json(
    data: bytes | str,
    *,
    what: str,
    error: type[AdvParamsError] = AdvParamsError,
    max_depth: int = MAX_JSON_DEPTH,
    max_nodes: int = MAX_TREE_NODES,
) -> Any:
    """Parses JSON with bounded depth and size, refusing duplicate keys and non-finite numbers.

    The value count is bounded *before* parsing (:func:`least_values`), so a document of
    millions of small values costs a scan of its text, not millions of Python objects;
    pass a small ``max_nodes`` for a field whose size is known (a list of 1,000 labels).

    Example:
        >>> parse_json(b'{"a": [1, 2.5]}', what="example")
        {'a': [1, 2.5]}
        >>> parse_json(b'{"a": 1, "a": 2}', what="example")
        Traceback (most recent call last):
        ...
        advparams.errors.AdvParamsError: example is corrupt: the key 'a' appears twice in one object
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        if len(text) > max_nodes and least_values(text) > max_nodes:
            raise _fail(error, f"{what} holds more than {max_nodes} values")
        value = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_float=_finite_float, parse_constant=_no_constant
        )
    except _Refused as exc:
        raise _fail(error, f"{what} is corrupt: {exc}") from None
    except RecursionError:
        raise _fail(error, f"{what} is nested too deeply (more than {max_depth} levels)") from None
    except UnicodeDecodeError:
        raise _fail(error, f"{what} is not UTF-8 text") from None
    except ValueError as exc:  # json.JSONDecodeError, and integers of more than 4,300 digits
        raise _fail(error, f"{what} is corrupt or not JSON ({str(exc).split(':')[0]})") from None
    check_tree(value, what=what, error=error, max_depth=max_depth, max_nodes=max_nodes)
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')


def least_values(text: str) -> int:
    """The fewest values a JSON text can hold, counted without parsing it: one more than
    its commas outside strings (every comma separates two values of one array or object,
    and :func:`check_tree` counts an object's keys and values both).

    Example:
        >>> least_values('[1, 2, {"a,b": 3}]')
        3
    """
    if '"' in text:
        text = _JSON_STRING.sub("", text)
    return text.count(",") + 1


def check_tree(
    value: Any,
    *,
    what: str,
    error: type[AdvParamsError] = AdvParamsError,
    max_depth: int = MAX_JSON_DEPTH,
    max_nodes: int = MAX_TREE_NODES,
) -> None:
    """Refuses a parsed document nested deeper than ``max_depth`` or with more than
    ``max_nodes`` values; shared references are counted each time (YAML aliases)."""
    containers = (Mapping, list, tuple, set, frozenset)
    stack: list[tuple[Any, int]] = [(value, 0)] if isinstance(value, containers) else []
    nodes = 1
    while stack:
        v, depth = stack.pop()
        children: Any = [*v.keys(), *v.values()] if isinstance(v, Mapping) else v
        if depth >= max_depth:
            raise _fail(error, f"{what} is nested too deeply (more than {max_depth} levels)")
        nodes += len(children)  # every child counts once here; only containers are visited
        if nodes > max_nodes:
            raise _fail(error, f"{what} holds more than {max_nodes} values (are YAML aliases repeated?)")
        stack.extend((c, depth + 1) for c in children if isinstance(c, containers))


def read_text_lines(path: Path, *, what: str, limit: int, error: type[AdvParamsError] = AdvParamsError) -> list[str]:
    """The lines of a bounded UTF-8 text file."""
    try:
        return read_file(path, what=what, limit=limit, error=error).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise _fail(error, f"{what} {path} is not UTF-8 text") from None


_FLOW = re.compile(r"""[\[\]{}'"#\n\\]""")


def flow_depth(text: str) -> int:
    """The deepest nesting of YAML flow collections (``[...]``, ``{...}``) in ``text``,
    outside quoted strings and comments: a quick scan, so that a file nested far past the
    limit is refused before a recursive parser spends seconds on it (a guard, not a
    parser: the parse that follows still bounds the depth exactly)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    depth = deepest = 0
    quote = ""
    comment = False
    escape_at = -1  # the position a backslash in a double-quoted string escapes
    for m in _FLOW.finditer(text):
        ch, at = m.group(), m.start()
        before = text[at - 1] if at else "\n"
        if comment:
            comment = ch != "\n"
        elif quote == '"':
            if at == escape_at:
                continue
            if ch == "\\":
                escape_at = at + 1
            elif ch == '"':
                quote = ""
        elif quote == "'":
            quote = "" if ch == "'" else quote  # '' inside reopens at once: no bracket between
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch in "'\"" and before in " \t\n[{,:-":
            quote = ch
        elif ch == "#" and before in " \t\n":
            comment = True
    return deepest


def parse_yaml(data: bytes, *, what: str, error: type[AdvParamsError] = AdvParamsError) -> Any:
    """Parses YAML with ``yaml.safe_load`` (plain data only, no Python objects), bounded:
    depth and value count as :func:`check_tree` (aliases counted each time they are used)."""
    import yaml

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(error, f"{what} is not UTF-8 text") from None
    if flow_depth(text) > MAX_JSON_DEPTH:  # before the parser recurses that deep (seconds)
        raise _fail(error, f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise _fail(error, f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _fail(error, f"{what} is not valid YAML{where}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp out of range
        raise _fail(error, f"{what} holds a value YAML cannot represent ({str(exc)[:80]})") from None
    check_tree(value, what=what, error=error)
    return value


def normalisation_field(
    meta: Mapping[str, str], name: str, channels: int, *, what: str, error: type[AdvParamsError] = AdvParamsError
) -> tuple[float, ...]:
    """A ``mean`` or ``std`` metadata field: a JSON list of one finite number per channel
    (a ``std`` positive), as the watermark key and fingerprint files store them."""
    from advparams.files.values import number

    values = parse_json(meta.get(name, ""), what=f"{what} field {name!r}", error=error)
    if not isinstance(values, list) or len(values) != channels:
        raise _fail(error, f"{what} is corrupt ({name!r} is not a list of {channels} numbers)")
    lo = 1e-12 if name == "std" else -1e6
    return tuple(number(v, what=f"{what} {name}", lo=lo, hi=1e6, error=error) for v in values)
