"""Result rows: one JSON line per measured thing, the only input of reports.

Every row has a kind its family registered (:attr:`advparams.house.Family.kinds`); the
toolkit's own:

* ``clean``: the trained model of a seed (accuracy, training time);
* ``lock``: a scheme's lock of that model (locked / unlocked accuracy, key size, time);
* ``stealth``: KS tests, ranks and z-scores of that lock;
* ``histogram``: per-layer weight histograms, original against locked (first seed);
* ``budget``: a lock made with a given budget (accuracy against size);
* ``attack``: an attack on a locked model (accuracy after, detection scores, ...);
* ``baseline``: a model an attack made for comparison (the scratch model);
* ``null``: an independently trained model that calibrates watermark thresholds;
* ``watermark``: a watermark embedded in the model of a seed (clean accuracy, watermark
  accuracy, calibration, fingerprint authentication, watermark-then-lock);
* ``wm-attack``: an attack on a watermarked model (retention, verification, accuracy);
* ``fp-model``: an independently trained negative for the fingerprints (accuracy, time);
* ``fingerprint``: a fingerprint taken of the model of a seed (calibration, the scores of
  the null models and negatives, the locked and unlocked model, times);
* ``fp-suspect``: a fingerprint's verification of a model an attack derived from it;
* ``trace-lock``: a traceable lock of a model (the locked model, the queries' cost);
* ``trace-copy``: one user's copy of it (accuracy, label agreement, white- and black-box
  tracing);
* ``trace-attack``: an attacked or colluders' copy, traced both ways;
* ``session``: one invocation of the harness (wall time, environment, the command line
  that started it; ``interrupted`` and ``stopped_by`` when Ctrl-C or an error ended it).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advparams.errors import AdvParamsError
from advparams.files import LIMITS, parse_json, read_file, read_text_lines
from advparams.house import RowKind, row_kind

log = logging.getLogger(__name__)


class Metrics(dict[str, Any]):
    """A row's metrics, held to the names its kind declares (:class:`advparams.house.RowKind`):
    a row is refused when made with another name, and asking for one (``m["x"]``,
    ``m.get("x")``, ``"x" in m``) is an error, not a silent blank cell in a report."""

    def __init__(self, data: Any = (), kind: RowKind | None = None) -> None:
        super().__init__(data)
        self.kind = kind
        if kind is not None:
            unknown = sorted(k for k in self if not kind.allows(k))
            if unknown:
                raise ValueError(
                    f"row kind {kind.name!r} has no metric {unknown[0][:60]!r} (its metrics: {', '.join(kind.metrics)})"
                )

    def _declared(self, name: Any) -> None:
        if self.kind is not None and not (isinstance(name, str) and self.kind.allows(name)):
            raise KeyError(f"row kind {self.kind.name!r} has no metric {name!r}")

    def __getitem__(self, name: str) -> Any:
        self._declared(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self._declared(name)
        return super().get(name, default)

    def __contains__(self, name: object) -> bool:
        self._declared(name)
        return super().__contains__(name)


@dataclass(frozen=True)
class ResultRow:
    """One measured result.

    Attributes:
        run: the evaluation's name.
        kind: a registered row kind (:func:`advparams.house.row_kinds`).
        seed: the seed (``-1`` for session rows).
        scheme: scheme label (``None`` for clean/session rows; ``"scratch"`` for the
            fine-tuning baseline).
        attack: attack name, for attack and baseline rows.
        setting: the varying options of this row (an attack's grid point, a budget).
        accuracy: test accuracy of the model the row is about, in [0, 1].
        metrics: everything else, JSON-ready.
        seconds: wall-clock time of the work the row records.
    """

    run: str
    kind: str
    seed: int
    scheme: str | None = None
    attack: str | None = None
    setting: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        kind = row_kind(self.kind) if isinstance(self.kind, str) else None
        if kind is None:
            raise ValueError(f"unknown row kind {str(self.kind)[:40]!r}")
        ok = (
            isinstance(self.run, str)
            and isinstance(self.seed, int)
            and not isinstance(self.seed, bool)
            and all(v is None or isinstance(v, str) for v in (self.scheme, self.attack))
            and isinstance(self.setting, dict)
            and isinstance(self.metrics, dict)
            and (self.accuracy is None or type(self.accuracy) in (int, float))
            and isinstance(self.seconds, (int, float))
        )
        if not ok:
            raise ValueError("a row field has the wrong type")
        object.__setattr__(self, "metrics", Metrics(self.metrics, kind))

    @property
    def key(self) -> tuple[str, int, str | None, str | None, str]:
        """What identifies the row: re-running the harness skips rows with a known key."""
        return (self.kind, self.seed, self.scheme, self.attack, json.dumps(self.setting, sort_keys=True))

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)


def row_key(
    kind: str, seed: int, scheme: str | None = None, attack: str | None = None, setting: dict[str, Any] | None = None
) -> tuple[str, int, str | None, str | None, str]:
    """The key of a row that would be written with these values."""
    return (kind, seed, scheme, attack, json.dumps(setting or {}, sort_keys=True))


def read_rows(path: str | Path) -> list[ResultRow]:
    """Reads a JSON-lines results file.

    A last line cut short by a crash is dropped with a warning (the work it recorded is
    simply redone); a bad line anywhere else is an error.
    """
    p = Path(path)
    if not p.exists() and not p.is_symlink():
        return []
    lines = read_text_lines(p, what="results file", limit=LIMITS["rows"])
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            body = parse_json(line, what=f"{p}, line {i + 1}")
            if not isinstance(body, dict):
                raise TypeError("not an object")
            rows.append(ResultRow(**body))
        except (ValueError, TypeError, AdvParamsError) as exc:
            if i == len(lines) - 1:
                log.warning("%s: dropping an incomplete last line", p)
                continue
            why = f"{type(exc).__name__}: {str(exc)[:160]}" if "has no metric" in str(exc) else type(exc).__name__
            raise AdvParamsError(f"{p}, line {i + 1}: not a result row ({why})") from None
    return rows


class RowWriter:
    """Appends rows to a JSON-lines file, each flushed to disk before the next work starts."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._valid_end()

    def _valid_end(self) -> None:
        # Cut a partial last line left by a crash, so the next row starts on its own line.
        if not self.path.exists():
            return
        data = read_file(self.path, what="results file", limit=LIMITS["rows"])
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)

    def write(self, row: ResultRow) -> None:
        """Appends ``row`` and fsyncs."""
        self.write_many([row])

    def write_many(self, rows: list[ResultRow]) -> int:
        """Appends ``rows`` in one write, fsyncs, and returns the file's new length."""
        with open(self.path, "ab") as fh:
            fh.write("".join(r.to_json() + "\n" for r in rows).encode())
            fh.flush()
            os.fsync(fh.fileno())
            return fh.tell()
