"""A toy study for testing executors: small units with dependencies and artefacts on disk.

``source/<i>`` units draw a number from their seed and write it to the run folder;
``square/<i>`` units depend on them, read the artefact and square it. A unit can be told
to crash its worker process the first time it runs (``crash_once``), or to raise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from advparams.errors import AdvParamsError
from advparams.evaluation.engine import Study, Unit
from advparams.evaluation.rows import ResultRow


@dataclass(frozen=True)
class CountingStudy(Study):
    """``n`` sources and their squares, artefacts in ``folder``.

    Attributes:
        folder: where the units write their artefacts (shared by all workers).
        n: number of sources.
        sleep: seconds each unit waits (to make runs long enough to kill).
        crash_once: unit id whose worker process exits the first time it runs it.
        fail: unit id that raises an AdvParamsError.
    """

    folder: str
    n: int = 4
    sleep: float = 0.0
    crash_once: str = ""
    fail: str = ""
    name = "counting"

    def units(self) -> list[Unit]:
        out = [Unit(f"source/{i}", self.name, {"seed": i}) for i in range(self.n)]
        out += [Unit(f"square/{i}", self.name, {"seed": i}, deps=(f"source/{i}",)) for i in range(self.n)]
        return out

    def run(self, unit: Unit) -> list[ResultRow]:
        time.sleep(self.sleep)
        seed = int(unit.params["seed"])
        folder = Path(self.folder)
        if unit.id == self.fail:
            raise AdvParamsError(f"unit {unit.id} fails on purpose")
        marker = folder / f"crashed-{unit.id.replace('/', '-')}"
        if unit.id == self.crash_once and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker dies mid-unit
        if unit.id.startswith("source/"):
            value = float(torch.rand(1, generator=torch.Generator().manual_seed(seed)))
            (folder / f"source-{seed}.txt").write_text(repr(value))
            return [ResultRow("counting", "clean", seed, accuracy=value)]
        value = float((folder / f"source-{seed}.txt").read_text())
        return [ResultRow("counting", "attack", seed, attack="square", accuracy=value * value)]
