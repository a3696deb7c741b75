"""The evaluation: the config's studies turned into units, run by an executor into one run folder.

The studies are the registered families' (:func:`studies`, in family order:
:class:`~advparams.evaluation.models.ModelsStudy` (trained and null models),
:class:`~advparams.evaluation.locks.LocksStudy` (locks, budget sweeps, attacks),
:class:`~advparams.evaluation.watermarks.WatermarksStudy` (watermarks and their
attacks), :class:`~advparams.evaluation.backdoors.BackdoorsStudy` (backdoors implanted
and measured), :class:`~advparams.evaluation.detection.DetectionStudy` (backdoor
detectors against them), :class:`~advparams.evaluation.fingerprints.FingerprintsStudy`
(ownership fingerprints against copies and strangers),
:class:`~advparams.evaluation.tracing.TracingStudy` (per-user keys traced), and those of
families an owner registers); the run folder is :mod:`advparams.evaluation.run`, the
engine :mod:`advparams.evaluation.engine`.

Everything the run reads (the config's values, the data, the checkpoints) is checked
before the run folder is made; a session that stops part way (Ctrl-C, an error) still
leaves its ``session`` row, with its time and ``interrupted: true``.

Re-running with the same configuration skips every unit already done and reuses the
saved models and locks, so an interrupted run goes on where it stopped, whichever
executor ran it. A unit draws every random number from its own id and seed, and runs with
CPU numerics that do not depend on the thread count
(:func:`advparams.devices.reproducible_numerics`), so the rows are the same with the
serial executor and with Ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from advparams.devices import numerics, resolve_device, strict_mkl
from advparams.environment import environment
from advparams.errors import AdvParamsError
from advparams.evaluation.config import EvalConfig
from advparams.evaluation.context import RunContext
from advparams.evaluation.engine import Executor, Runner, SerialExecutor, Study, Unit, order
from advparams.evaluation.inputs import check_inputs
from advparams.evaluation.rows import ResultRow
from advparams.evaluation.run import RunFolder
from advparams.house import families

log = logging.getLogger(__name__)


def studies() -> tuple[Callable[[RunContext], Study], ...]:
    """The studies of an evaluation, each built from the run's :class:`RunContext`: every
    registered family's (:attr:`advparams.house.Family.study`), in family order."""
    return tuple(f.study for f in families() if f.study is not None)


@dataclass(frozen=True)
class HarnessProgress:
    """Passed to the progress callback after each unit of work."""

    done: int
    total: int
    label: str
    skipped: bool


def _done_units(run: RunFolder, studies: list[Study], units: list[Unit]) -> set[str]:
    """The units already done: from the bookkeeping, or, for a folder made before it (or
    whose rows were cut by hand), from the rows present; the bookkeeping is then rewritten."""
    try:
        done = run.done_units()
        if run.units_path.exists() and (done or not run.rows()):
            return done
    except AdvParamsError as exc:
        log.warning("%s; the finished units are read from the rows instead", exc)
    keys = {r.key for r in run.rows()}
    by_name = {s.name: s for s in studies}
    done = {u.id for u in units if by_name[u.study].done_by_rows(u, keys)}
    run.reset_units(done)
    return done


def evaluate_protection(
    config: EvalConfig,
    out: str | Path,
    *,
    device: str = "auto",
    force: bool = False,
    progress: Callable[[HarnessProgress], None] | None = None,
    executor: Executor | None = None,
    command: str | None = None,
) -> list[ResultRow]:
    """Runs an evaluation into ``out`` (resuming it if it exists); returns all its rows.

    Args:
        config: the evaluation.
        out: the run folder; resumed if it holds a run of the same configuration.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``, for every unit.
        force: discard a run folder of a different configuration (a folder that is not a
            run folder is never replaced).
        progress: called after each unit (units already done are reported as skipped).
        executor: runs the units; default :class:`SerialExecutor`.
        command: the command line that started this session, kept in its ``session``
            row for the report (never the environment).

    Example:
        >>> import tempfile
        >>> from advparams.evaluation import config_from_mapping
        >>> cfg = config_from_mapping({"name": "t", "dataset": "synthetic", "model": "lenet",
        ...     "seeds": [0], "train": {"epochs": 1}, "test_samples": 100, "histograms": False,
        ...     "schemes": [{"name": "random", "options": {"max_params": 5}}], "budgets": []})
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rows = evaluate_protection(cfg, d + "/run", device="cpu")
        >>> sorted(r.kind for r in rows)
        ['clean', 'lock', 'session', 'stealth']
    """
    strict_mkl()  # in time if this process has not multiplied matrices yet (the command line's case)
    start, wall = time.perf_counter(), time.time()
    run = RunFolder(out)
    check_inputs(config)
    ctx = RunContext(config, run.path, resolve_device(device))
    _ = (ctx.train, ctx.test)  # the data loaded, and so checked, before the folder is made
    run.prepare(config, force=force)
    built = [cls(ctx) for cls in studies()]
    units = order([u for s in built for u in s.units()])
    done = _done_units(run, built, units)
    known = {r.key for r in run.rows()}
    writer = run.writer()
    total, count, added, ran = len(units), 0, 0, 0

    def tick(unit: Unit, skipped: bool) -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress(HarnessProgress(count, total, unit.id, skipped))

    for unit in units:
        if unit.id in done:
            tick(unit, True)

    def on_done(unit: Unit, rows: list[ResultRow]) -> None:
        nonlocal added, ran
        fresh = [r for r in rows if r.key not in known]  # a legacy folder may hold some already
        run.commit(unit.id, fresh, writer)
        known.update(r.key for r in fresh)
        added += len(fresh)
        ran += 1
        tick(unit, False)

    chosen = executor or SerialExecutor()

    def session(stopped_by: str | None) -> ResultRow:
        metrics = {
            "rows_added": added,
            "units": total,
            "units_run": ran,
            "executor": chosen.describe(),
            "environment": {**environment(ctx.device), "numerics": numerics()},
            **({"command": command} if command else {}),
            **({"interrupted": True, "stopped_by": stopped_by} if stopped_by else {}),
        }
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall))
        return ResultRow(
            config.name,
            "session",
            -1,
            setting={"started": started},
            metrics=metrics,
            seconds=time.perf_counter() - start,
        )

    try:
        chosen.run(units, Runner(built, imports=config.imports, model_output=config.model_output), on_done, done=done)
    except BaseException as exc:  # Ctrl-C or an error: the session's time is recorded, then it goes on up
        row = session(type(exc).__name__)
        try:
            run.commit(f"session/{row.setting['started']}", [row], writer)
        except Exception as record_exc:  # noqa: BLE001  (never hide the reason the run stopped)
            log.warning("the session row could not be written (%s)", record_exc)
        raise
    row = session(None)
    run.commit(f"session/{row.setting['started']}", [row], writer)
    return run.rows()


__all__ = ["HarnessProgress", "evaluate_protection", "studies"]
