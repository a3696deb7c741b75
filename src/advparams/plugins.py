"""Bringing your own code in: a module or a ``.py`` file that registers members of the
toolkit's registries (most often a model architecture with ``@MODELS.register``).

Three explicit ways, each documented in ``docs/models.md``:

* ``--import MODULE_OR_FILE`` on the command line (repeatable, before or after the
  command's name), or ``imports:`` in an evaluation config;
* the environment variable ``ADVPARAMS_IMPORT``: module names or files separated by
  ``os.pathsep`` (``:`` on Linux and macOS);
* entry points of the group ``advparams.models`` declared by installed packages (loaded
  by the command line at start).

Security: importing runs the imported code with your rights. advparams imports only
what one of these names; a checkpoint, key or config's *contents* never make it import
anything (a checkpoint names its architecture, and an unknown name is an error that
says how to register it).

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "mynet_example.py").write_text(
    ...     "from torch import nn\\n"
    ...     "from advparams.models import MODELS\\n"
    ...     "@MODELS.register('mynet-example')\\n"
    ...     "def mynet(num_classes=10, in_channels=1, input_size=28):\\n"
    ...     "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size**2, num_classes))\\n"
    ... )
    >>> _ = import_user_code(str(folder / "mynet_example.py"))
    >>> from advparams.models import MODELS
    >>> "mynet-example" in MODELS
    True
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from advparams.errors import ConfigError

IMPORT_ENV = "ADVPARAMS_IMPORT"
ENTRY_POINT_GROUP = "advparams.models"

_LOADED: dict[str, ModuleType] = {}


def is_file_spec(spec: str) -> bool:
    """Whether ``spec`` names a file (ends in ``.py`` or holds a path separator) rather
    than an importable module name."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def resolve_spec(spec: str, base: str | os.PathLike[str] | None = None) -> str:
    """``spec`` with a file resolved to an absolute path (relative to ``base``, else the
    current folder); module names are returned as they are."""
    if not is_file_spec(spec):
        return spec
    p = Path(spec).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    return str(p.resolve())


def import_user_code(spec: str) -> ModuleType:
    """Imports a module by name, or a ``.py`` file by path, once per process.

    Raises:
        ConfigError: the module or file cannot be found or fails while importing (the
            message names it and the error).
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("--import / ADVPARAMS_IMPORT got an empty name")
    key = resolve_spec(spec)
    if key in _LOADED:
        return _LOADED[key]
    try:
        module = _import_file(Path(key)) if is_file_spec(spec) else importlib.import_module(spec)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001  (the user's code may raise anything)
        raise ConfigError(f"cannot import {spec!r}: {type(exc).__name__}: {exc}") from None
    _LOADED[key] = module
    return module


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"cannot import {str(path)!r}: no such file (expected a .py file or a module name)")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    name = f"advparams_user_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {str(path)!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def env_imports(environ: dict[str, str] | None = None) -> list[str]:
    """The names in ``$ADVPARAMS_IMPORT`` (``os.pathsep``-separated), in order."""
    raw = (os.environ if environ is None else environ).get(IMPORT_ENV, "")
    return [s.strip() for s in raw.split(os.pathsep) if s.strip()]


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Loads every entry point of ``group`` (installed packages' registrations); returns
    their names."""
    names = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot load entry point {ep.name!r} ({ep.value}) of {group}: {exc}") from None
        names.append(ep.name)
    return names


def load_plugins(imports: Iterable[str] = (), *, environment: bool = True, entry_points: bool = True) -> list[str]:
    """Imports ``imports``, then ``$ADVPARAMS_IMPORT``'s names, then the ``advparams.models``
    entry points; what the command line does at start. Returns what was loaded."""
    done = []
    for spec in [*imports, *(env_imports() if environment else [])]:
        import_user_code(spec)
        done.append(spec)
    if entry_points:
        done += load_entry_points()
    return done


__all__ = [
    "ENTRY_POINT_GROUP",
    "IMPORT_ENV",
    "env_imports",
    "import_user_code",
    "load_entry_points",
    "load_plugins",
    "resolve_spec",
]
