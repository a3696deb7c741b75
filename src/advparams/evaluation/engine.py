"""The evaluation engine: studies turn a configuration into units of work; executors run them.

A :class:`Unit` is a pure task described by plain data: which study runs it, its
parameters (what to build or load, the seed, options) and the units it depends on
(train -> lock -> attack; null models -> calibration -> verification). Artefacts that
several units need are written once into the run folder by the unit that makes them and
loaded by the units that depend on it, so a unit can run in any process that sees the
run folder.

Executors run the units in dependency order and hand each unit's rows to one writer (the
caller's ``on_done``, in the driving process), so rows are appended by one process only:

* :class:`SerialExecutor` runs them one after the other in this process (the default);
* :class:`RayExecutor` runs them on a Ray cluster, a local one with ``workers`` processes
  or an existing one at ``address``; torch threads per worker are set so that workers
  do not oversubscribe the cores, a unit whose worker dies is run again, and a unit's own
  error stops the run.

Results do not depend on the executor: each unit draws its randomness from its own
parameters (seeds), never from state left by another unit.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from advparams.errors import AdvParamsError, ConfigError
from advparams.evaluation.rows import ResultRow

MAX_RETRIES = 3
"""Times a unit is run again when the worker running it is lost."""


@dataclass(frozen=True)
class Unit:
    """One unit of work (plain data: it travels to other processes and machines).

    Attributes:
        id: unique in a run, e.g. ``"lock/advparams/seed0"``; names the unit in the
            run folder's bookkeeping.
        study: the name of the study that runs it.
        params: JSON-ready parameters (seed, options, which artefacts to load).
        deps: ids of the units that must be done first.
    """

    id: str
    study: str
    params: Mapping[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()


class Study(ABC):
    """One family's part of an evaluation: its units and how to run one.

    A study is built from configuration only (it travels to the workers) and never
    imports another study; units of other studies are named by id in ``deps``.
    """

    name: ClassVar[str]

    @abstractmethod
    def units(self) -> list[Unit]:
        """Every unit of this study, in a sensible serial order."""

    @abstractmethod
    def run(self, unit: Unit) -> list[ResultRow]:
        """Runs ``unit`` (its dependencies are done) and returns its rows."""

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        """Whether ``unit`` is done, judged by the row keys in the run folder (for run
        folders made before the engine's bookkeeping); by default never."""
        return False


def order(units: Sequence[Unit]) -> list[Unit]:
    """The units in dependency order, keeping the given order where it is free.

    Raises:
        ConfigError: two units share an id, a dependency is unknown, or there is a cycle.
    """
    by_id: dict[str, Unit] = {}
    for u in units:
        if u.id in by_id:
            raise ConfigError(f"two units are both called {u.id!r}")
        by_id[u.id] = u
    out: list[Unit] = []
    state: dict[str, int] = {}  # 1: being visited, 2: placed
    for root in units:
        stack: list[tuple[Unit, int]] = [(root, 0)]
        while stack:
            u, i = stack.pop()
            if state.get(u.id) == 2:
                continue
            if i == 0:
                if state.get(u.id) == 1:
                    raise ConfigError(f"the units depend on each other in a cycle through {u.id!r}")
                state[u.id] = 1
            if i < len(u.deps):
                stack.append((u, i + 1))
                dep = u.deps[i]
                if dep not in by_id:
                    raise ConfigError(f"unit {u.id!r} depends on {dep!r}, which no study makes")
                if state.get(dep) != 2:
                    stack.append((by_id[dep], 0))
            else:
                state[u.id] = 2
                out.append(u)
    return out


class Runner:
    """Runs a unit with the study it names (what an executor sends to its workers)."""

    def __init__(self, studies: Iterable[Study], *, imports: Sequence[str] = (), model_output: str = "auto") -> None:
        self.studies = {s.name: s for s in studies}
        self.imports = tuple(imports)
        self.model_output = model_output

    def __call__(self, unit: Unit) -> list[ResultRow]:
        import torch

        from advparams._rng import isolated_seed
        from advparams.devices import reproducible_numerics
        from advparams.metrics.accuracy import model_output
        from advparams.plugins import import_user_code

        for spec in self.imports:  # a worker process registers the user's code first
            import_user_code(spec)
        if unit.study not in self.studies:
            raise ConfigError(f"unit {unit.id!r} names study {unit.study!r}, which is not in this run")
        gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        seed = unit_seed(unit.id)
        cuda = [torch.device("cuda", i) for i in gpus]
        with reproducible_numerics(), isolated_seed(seed, cuda), model_output(self.model_output):
            return self.studies[unit.study].run(unit)


def unit_seed(unit_id: str) -> int:
    """The seed of torch's global generator while ``unit_id`` runs (from its id alone, so
    that no unit's numbers depend on which units ran before it in the same process).

    >>> unit_seed("train/seed0") == unit_seed("train/seed0") != unit_seed("train/seed1")
    True
    """
    return int.from_bytes(hashlib.sha256(unit_id.encode()).digest()[:8], "big") >> 1


OnDone = Callable[[Unit, list[ResultRow]], None]


class Executor(ABC):
    """Runs units in dependency order; ``on_done`` (in this process) receives each unit's rows."""

    name: ClassVar[str]

    @abstractmethod
    def run(self, units: Sequence[Unit], runner: Runner, on_done: OnDone, *, done: Iterable[str] = ()) -> None:
        """Runs every unit whose id is not in ``done``."""

    def describe(self) -> dict[str, Any]:
        """What the run record keeps of the executor."""
        return {"name": self.name}


class SerialExecutor(Executor):
    """One unit after the other, in this process."""

    name = "serial"

    def run(self, units: Sequence[Unit], runner: Runner, on_done: OnDone, *, done: Iterable[str] = ()) -> None:
        finished = set(done)
        for unit in order(units):
            if unit.id not in finished:
                on_done(unit, runner(unit))
                finished.add(unit.id)


def threads_per_worker(workers: int, cores: int | None = None, limit: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes on ``cores`` cores (at least 1), at
    most ``limit``.

    >>> threads_per_worker(2, 2), threads_per_worker(2, 16), threads_per_worker(8, 4), threads_per_worker(2, 16, 4)
    (1, 8, 1, 4)
    """
    share = max(1, (cores or os.cpu_count() or 1) // max(1, workers))
    return share if limit is None else max(1, min(share, limit))


def thread_limit() -> int | None:
    """``OMP_NUM_THREADS`` when it is set: the usual cap of a shared machine, which the
    engine honours (more threads than free cores spin against each other)."""
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return int(cap) if cap.isdigit() and int(cap) >= 1 else None


def _node_threads() -> int:
    """On a cluster: this machine's cores divided by the CPUs it gave Ray (``ray start
    --num-cpus``), since Ray runs that many one-CPU units on it at once."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    cpus = next((n["Resources"].get("CPU", 1) for n in ray.nodes() if n["NodeID"] == node), 1)
    return threads_per_worker(max(1, int(cpus)), limit=thread_limit())


def _run_in_worker(runner: Runner, unit: Unit, threads: int | None) -> list[ResultRow]:
    import torch

    from advparams.devices import strict_mkl

    strict_mkl()  # a fresh worker's first unit comes before its first matrix product
    torch.set_num_threads(threads or _node_threads())
    return runner(unit)


class RayExecutor(Executor):
    """Units as Ray tasks, at most ``workers`` at a time, each with ``threads`` torch threads.

    Args:
        workers: parallel units (a local cluster gets this many CPUs).
        address: an existing Ray cluster (``ray start --head`` prints it); ``None``
            starts a local one for the run.
        threads: torch threads per worker; default: on a local cluster the cores divided
            by ``workers``, on an existing one each machine's cores divided by the CPUs it
            gave Ray.
        quiet: Ray logs errors only (its start-up and token notices, which it prints on
            stderr, are dropped), for ``--json``; otherwise warnings too. The workers'
            output never reaches this process either way.
    """

    name = "ray"

    def __init__(
        self, workers: int = 2, *, address: str | None = None, threads: int | None = None, quiet: bool = False
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.address = address
        self.threads = threads or (None if address else threads_per_worker(workers, limit=thread_limit()))
        self.quiet = quiet

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers, "threads": self.threads, "cluster": bool(self.address)}

    def run(self, units: Sequence[Unit], runner: Runner, on_done: OnDone, *, done: Iterable[str] = ()) -> None:
        try:
            import ray
        except ImportError:
            raise AdvParamsError("the Ray executor needs Ray: pip install 'advparams[distributed]'") from None
        started = not ray.is_initialized()
        if started:
            level = logging.ERROR if self.quiet else logging.WARNING
            if self.address:
                ray.init(address=self.address, log_to_driver=False, logging_level=level)
            else:
                # a private local instance: never a cluster some `ray start` left on this
                # machine (ray.init() without an address would join it, or fail on a
                # stale address of one that has stopped)
                ray.init(
                    address="local",
                    num_cpus=self.workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=level,
                )
        try:
            self._schedule(ray, order(units), runner, on_done, set(done))
        finally:
            if started:
                ray.shutdown()

    def _schedule(self, ray: Any, units: list[Unit], runner: Runner, on_done: OnDone, finished: set[str]) -> None:
        task = ray.remote(num_cpus=1, max_retries=0)(_run_in_worker)
        runner_ref = ray.put(runner)
        pending = [u for u in units if u.id not in finished]
        running: dict[Any, tuple[Unit, int]] = {}
        lost = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError)

        def submit(unit: Unit, tries: int) -> None:
            running[task.remote(runner_ref, unit, self.threads)] = (unit, tries)

        while pending or running:
            ready = [u for u in pending if all(d in finished for d in u.deps)]
            for unit in ready[: max(0, 2 * self.workers - len(running))]:
                pending.remove(unit)
                submit(unit, 0)
            if not running:
                raise ConfigError("units wait on dependencies that can never finish")
            (ref,), _ = ray.wait(list(running), num_returns=1)
            unit, tries = running.pop(ref)
            try:
                rows = ray.get(ref)
            except lost:
                if tries + 1 >= MAX_RETRIES:
                    raise AdvParamsError(f"unit {unit.id} was lost {MAX_RETRIES} times with its worker") from None
                submit(unit, tries + 1)
                continue
            except ray.exceptions.RayTaskError as exc:
                for r in running:
                    ray.cancel(r, force=True)
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                raise cause from None
            on_done(unit, rows)
            finished.add(unit.id)


EXECUTORS: dict[str, type[Executor]] = {"serial": SerialExecutor, "ray": RayExecutor}


def make_executor(name: str, *, workers: int = 2, address: str | None = None, quiet: bool = False) -> Executor:
    """The executor called ``name`` (``serial`` or ``ray``); ``quiet``: Ray logs errors only."""
    if name == "serial":
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(workers, address=address, quiet=quiet)
    raise ConfigError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "Executor",
    "RayExecutor",
    "Runner",
    "SerialExecutor",
    "Study",
    "Unit",
    "make_executor",
    "order",
    "threads_per_worker",
    "unit_seed",
]
