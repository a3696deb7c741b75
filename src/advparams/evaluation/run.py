"""The run folder: the lowest layer of an evaluation, and the one public way to read one.

Layout::

    RUN/.advparams-output.json     marker: made by evaluate-protection
    RUN/config.yaml                the resolved configuration (a re-run must match it)
    RUN/results.jsonl              the rows (:mod:`advparams.evaluation.rows`)
    RUN/units.jsonl                resume bookkeeping: each finished unit and where its rows end
    RUN/models/seed<S>/            the trained model of each seed (a checkpoint folder)
    RUN/locks/<scheme>-seed<S>/    each locked model (checkpoint folder) ...
    RUN/locks/<scheme>-seed<S>.key ... and its key
    RUN/null/seed<S>/              the null models that calibrate watermark thresholds
    RUN/watermarks/<wm>-seed<S>/      each watermarked model ...
    RUN/watermarks/<wm>-seed<S>.wmkey ... and its key samples

Reports and benchmarks read runs only through :func:`open_run` (config and rows); the
harness writes them through :class:`RunFolder`. The environment of each session is a
``session`` row.

Example:
    >>> import tempfile
    >>> from advparams.evaluation.config import config_from_mapping
    >>> cfg = config_from_mapping({"name": "demo", "dataset": "synthetic", "model": "lenet",
    ...                            "seeds": [0], "schemes": [{"name": "random"}]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     run = RunFolder(d + "/run")
    ...     run.prepare(cfg, force=False)
    ...     (open_run(d + "/run").read_config() == cfg, run.rows(), run.lock_paths("random", 0)[1].name)
    (True, [], 'random-seed0.key')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from advparams.errors import AdvParamsError, ConfigError, OutputExistsError
from advparams.evaluation.config import EvalConfig, load_config
from advparams.evaluation.rows import ResultRow, RowWriter, read_rows
from advparams.files import (
    LIMITS,
    atomic_directory,
    atomic_write_bytes,
    integer,
    parse_json,
    read_marker,
    read_text_lines,
    resolve,
    string,
    write_marker,
)

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.jsonl"
UNITS_FILE = "units.jsonl"
RUN_COMMAND = "evaluate-protection"
_HEADER = "# Resolved by advparams evaluate-protection; a re-run of this folder must match it.\n"


def _config_text(config: EvalConfig) -> bytes:
    import yaml

    return (_HEADER + yaml.safe_dump(config.to_dict(), sort_keys=False)).encode()


def _start(folder: Path, config: EvalConfig) -> None:
    (folder / CONFIG_FILE).write_bytes(_config_text(config))
    (folder / RESULTS_FILE).touch()
    (folder / UNITS_FILE).touch()


class RunFolder:
    """One evaluation's folder: where each artefact lives, its config and its rows.

    Args:
        path: the folder (need not exist yet).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = resolve(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- where things are ------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """The resolved configuration."""
        return self.path / CONFIG_FILE

    @property
    def results_path(self) -> Path:
        """The rows."""
        return self.path / RESULTS_FILE

    def model_path(self, seed: int) -> Path:
        """The trained model of ``seed``."""
        return self.path / "models" / f"seed{seed}"

    def lock_paths(self, scheme: str, seed: int) -> tuple[Path, Path]:
        """The locked model of ``scheme`` (its label) on ``seed``, and its key."""
        name = f"{scheme}-seed{seed}"
        return self.path / "locks" / name, self.path / "locks" / f"{name}.key"

    def null_path(self, seed: int) -> Path:
        """A null model (independently trained, for watermark thresholds)."""
        return self.path / "null" / f"seed{seed}"

    def watermark_paths(self, watermark: str, seed: int) -> tuple[Path, Path]:
        """The watermarked model of ``watermark`` (its label) on ``seed``, and its key samples."""
        name = f"{watermark}-seed{seed}"
        return self.path / "watermarks" / name, self.path / "watermarks" / f"{name}.wmkey"

    # -- reading ---------------------------------------------------------------------
    def read_config(self) -> EvalConfig:
        """The resolved configuration saved in the folder."""
        try:
            return load_config(self.config_path)
        except ConfigError as exc:
            raise ConfigError(f"{self.config_path} is not a readable resolved config ({exc})") from None

    def rows(self) -> list[ResultRow]:
        """Every row written so far (a last line cut short by a crash is dropped)."""
        return read_rows(self.results_path)

    def writer(self) -> RowWriter:
        """The appender of new rows (each fsynced before the next work starts)."""
        return RowWriter(self.results_path)

    # -- units: the engine's resume bookkeeping --------------------------------------------
    @property
    def units_path(self) -> Path:
        """Which units are done, and where the rows of each end in ``results.jsonl``."""
        return self.path / UNITS_FILE

    def done_units(self) -> set[str]:
        """The units whose rows are all in ``results.jsonl``.

        Rows written after the last finished unit (a unit killed while its rows were
        being written) are cut off here, so that its re-run neither loses nor doubles a
        row. A folder without ``units.jsonl`` (made before the engine) is left as it is.
        """
        if not self.units_path.exists():
            return set()
        done, end = set(), 0
        for i, line in enumerate(read_text_lines(self.units_path, what="units file", limit=LIMITS["rows"])):
            try:
                entry = parse_json(line, what=f"{self.units_path}, line {i + 1}")
                done.add(string(entry["unit"], what="unit id"))
                end = max(end, integer(entry["end"], what="rows end", lo=0, hi=2**62))
            except (AdvParamsError, KeyError, TypeError):
                continue  # a last line cut short by a kill: that unit is not done
        size = self.results_path.stat().st_size if self.results_path.exists() else 0
        if size > end:
            with open(self.results_path, "r+b") as fh:
                fh.truncate(end)
        elif size < end:
            raise AdvParamsError(
                f"{self.results_path} is shorter than {self.units_path} says: the run folder is damaged"
            )
        return done

    def commit(self, unit_id: str, rows: list[ResultRow], writer: RowWriter) -> None:
        """Appends a finished unit's rows, then records the unit as done (both fsynced, in
        that order: a kill in between re-runs the unit and drops its first rows)."""
        end = (
            writer.write_many(rows) if rows else (self.results_path.stat().st_size if self.results_path.exists() else 0)
        )
        with open(self.units_path, "ab") as fh:
            fh.write((json.dumps({"unit": unit_id, "rows": len(rows), "end": end}) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())

    def reset_units(self, done: set[str]) -> None:
        """Rewrites the bookkeeping as ``done`` with every row so far (for a folder from
        before the engine, or one whose rows were changed by hand)."""
        end = self.results_path.stat().st_size if self.results_path.exists() else 0
        text = "".join(json.dumps({"unit": u, "rows": None, "end": end}) + "\n" for u in sorted(done))
        atomic_write_bytes(self.units_path, text.encode(), force=True)

    def is_run(self) -> bool:
        """Whether the folder was made by ``evaluate-protection`` (its marker, or for runs
        from before markers, a readable resolved config)."""
        if read_marker(self.path) == RUN_COMMAND:
            return True
        try:
            self.read_config()
        except ConfigError:
            return False
        return True

    # -- writing ---------------------------------------------------------------------
    def write_config(self, config: EvalConfig) -> None:
        """Saves the resolved configuration (atomically)."""
        atomic_write_bytes(self.config_path, _config_text(config), force=True)

    def prepare(self, config: EvalConfig, *, force: bool) -> None:
        """Creates the folder, or checks that it holds a run of the same configuration.

        With ``force`` a run of a different configuration is replaced (its rows and
        models are lost, which is what ``--force`` asks for); a folder that is not a run
        folder is never replaced, with or without ``force``.
        """
        out = self.path
        if out.exists() or out.is_symlink():
            if not out.is_dir():
                raise OutputExistsError(f"{out} exists and is not a folder")
            if self.config_path.exists():
                if self.read_config().fingerprint() == config.fingerprint():
                    if read_marker(out) is None:
                        write_marker(out, RUN_COMMAND)
                    return  # resume
                if not force:
                    raise OutputExistsError(
                        f"{out} holds a run of a different configuration; use another --out, "
                        "or --force to discard it and start again"
                    )
            elif any(out.iterdir()):
                raise OutputExistsError(
                    f"{out} exists, is not empty and is not an evaluation run folder; it is never replaced "
                    "(not even with --force): choose another --out"
                )
            if any(out.iterdir()) and not self.is_run():
                raise OutputExistsError(
                    f"{out} is not an evaluation run folder; it is never replaced: choose another --out"
                )
            write_marker(out, RUN_COMMAND)  # a run from before markers, or an empty folder
            with atomic_directory(out, force=True, made_by=RUN_COMMAND) as tmp:
                _start(tmp, config)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_directory(out, made_by=RUN_COMMAND) as tmp:
            _start(tmp, config)


def open_run(path: str | os.PathLike[str]) -> RunFolder:
    """An existing run folder, for reading (reports, benchmarks).

    Raises:
        AdvParamsError: ``path`` holds no ``config.yaml`` and ``results.jsonl``.
    """
    run = RunFolder(path)
    if not run.results_path.exists() or not run.config_path.exists():
        raise AdvParamsError(f"{path} is not an evaluation run (no {CONFIG_FILE} and {RESULTS_FILE})")
    return run


__all__ = ["CONFIG_FILE", "RESULTS_FILE", "RUN_COMMAND", "RunFolder", "open_run"]
