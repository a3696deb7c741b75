"""A toy family, kept in the test suite: everything a family gives the house (a config
section, a study, a row kind, a report section, a CLI verb and a registry) in one file,
registered with :func:`advparams.house.register_family` and nothing else.

Brought in as a user's module is (``imports:`` in a config, ``--import`` on the command
line); ``test_house.py`` runs it end to end.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from advparams.errors import ConfigError
from advparams.evaluation import ResultRow, Study, Unit
from advparams.evaluation.context import RunContext, train_unit
from advparams.house import Family, RowKind, Section, register_family
from advparams.registry import Registry

TOYS: Registry[Any] = Registry("toy")


@TOYS.register("class-count")
class ClassCount:
    """Counts how many of the first classes a model ever predicts."""


@dataclass(frozen=True)
class ToySection:
    """The ``toy:`` section: how many classes to look at."""

    classes: int = 3

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes}


def read_toy(raw: Any, so_far: Mapping[str, Any]) -> ToySection:
    if not isinstance(raw, Mapping) or set(raw) - {"classes"}:
        raise ConfigError("toy: a mapping with at most the key 'classes'")
    classes = raw.get("classes", 3)
    if not isinstance(classes, int) or isinstance(classes, bool) or not 1 <= classes <= 10:
        raise ConfigError(f"toy.classes must be an integer in [1, 10], got {classes!r}")
    return ToySection(classes)


class ToyStudy(Study):
    """One unit per seed, after that seed's model is trained: which of the first classes
    the model predicts on the test images."""

    name = "toy"

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def units(self) -> list[Unit]:
        if self.ctx.config.toy is None:
            return []
        return [Unit(f"toy/seed{s}", self.name, {"seed": s}, deps=(train_unit(s),)) for s in self.ctx.config.seeds]

    def run(self, unit: Unit) -> list[ResultRow]:
        seed, classes = int(unit.params["seed"]), self.ctx.config.toy.classes
        model = self.ctx.model_of(seed).eval()
        images, _ = self.ctx.test.tensors(torch.arange(min(200, len(self.ctx.test))))
        with torch.no_grad():
            predicted = model(images.to(self.ctx.device)).argmax(1)
        seen = sorted({int(c) for c in predicted if int(c) < classes})
        return [self.ctx.row("toy-count", seed, metrics={"classes": classes, "predicted": seen})]


def toy_report(by_kind: Mapping[str, list[ResultRow]], config: Any) -> list[str]:
    rows = by_kind.get("toy-count", [])
    if not rows:
        return []
    lines = ["## Toy", "", "| seed | predicted of the first classes |", "|---|---|"]
    lines += [f"| {r.seed} | {len(r.metrics['predicted'])} / {r.metrics['classes']} |" for r in rows]
    return [*lines, ""]


def cmd_toy(args: argparse.Namespace) -> int:
    print(f"toy: {len(TOYS.names())} toy registered, {args.classes} classes")
    return 0


def toy_cli(sub: Any) -> None:
    p = sub.add_parser("toy", help="the test suite's toy family")
    p.add_argument("--classes", type=int, default=3, help="how many classes")
    p.set_defaults(func=cmd_toy)


FAMILY = register_family(
    Family(
        "toy",
        order=70,
        what="the test suite's toy family",
        section=Section("toy", read_toy),
        study=ToyStudy,
        kinds=(RowKind("toy-count", ("classes", "predicted"), "which of the first classes a model predicts"),),
        report=toy_report,
        cli=toy_cli,
        registries={"toys": (TOYS, "the test suite's toy family")},
    )
)
