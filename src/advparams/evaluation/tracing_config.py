"""The ``tracing:`` section of an evaluation config: traceable keys (``docs/tracing.md``),
the users, the models, and the attacks on leaked copies.

Example::

    tracing:
      users: 100                      # roster size; every user's copy is measured and traced
      models:                         # architectures besides the run's model
        - {model: vgg, options: {width: 16}, train: {epochs: 4}, train_samples: 10000}
      lock: {draws: 1}                # hardened options (dither is always 23)
      mark: {strength: 0.05}          # MarkConfig
      queries: {queries: 4096}        # QueryConfig
      query_pool: 5000                # the owner's training images the queries are made from
      attacked_users: 3               # users whose copies every attack is run on
      coalitions: 3                   # coalitions of each size
      colluders: [2, 3]
      attacks:
        - {name: finetune, options: {epochs: 5}, grid: {data_fraction: [0.01, 0.05, 0.1]}}
        - {name: prune, grid: {rate: [0.3, 0.5]}}
        - {name: noise, grid: {scale: [0.025, 0.05]}}
        - {name: relock, grid: {scheme: [advparams, hardened]}}
        - {name: adaptive}

``finetune`` and ``prune`` are the registered attacks; ``noise`` (Gaussian, ``scale`` of
each weight tensor's standard deviation), ``relock`` (the leaker locks his copy with
``scheme`` and ships the locked model) and ``adaptive`` (the single-copy attacker of
:func:`advparams.tracing.attacks.unmark_by_values`) are tracing's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from advparams.errors import ConfigError
from advparams.evaluation.limits import MAX_SAMPLES, check_train
from advparams.evaluation.reading import integer, known_keys, mapping
from advparams.evaluation.specs import AttackSpec, Titled, attack_spec_from_mapping

DEFAULT_LIMITS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MODEL_SEED = 0
"""Extra architectures train from the run's seeds (their own units and folders)."""


@dataclass(frozen=True)
class TracedModel(Titled):
    """An architecture traced besides the run's model.

    Attributes:
        model: a registered architecture.
        options: its arguments (the data set's shape is filled in).
        train: training options over the run's (``epochs``, ``lr``, ...).
        train_samples: its training images (a fixed subset; None: the run's).
        label: how tables call it (default: the architecture's name).
    """

    named_by = "model"
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    train_samples: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class TracingSection:
    """Traceable keys in an evaluation (see the module docstring).

    Attributes:
        users: users in each roster.
        models: architectures traced besides the run's model.
        lock: the hardened lock's options (``dither`` is set to 23).
        mark: the marks' options (:class:`advparams.tracing.MarkConfig`).
        queries: the black-box queries' options (:class:`advparams.tracing.QueryConfig`).
        query_pool: training images the queries are made from (the first N of the run's).
        attacked_users: users whose copies each attack is run on (the first N).
        coalitions: coalitions of each size (disjoint users, after the attacked ones).
        colluders: coalition sizes.
        attacks: attacks on a leaked copy.
        limits: query counts at which black-box tracing is also scored (queries needed).
    """

    users: int = 100
    models: tuple[TracedModel, ...] = ()
    lock: Mapping[str, Any] = field(default_factory=dict)
    mark: Mapping[str, Any] = field(default_factory=dict)
    queries: Mapping[str, Any] = field(default_factory=dict)
    query_pool: int = 5000
    attacked_users: int = 3
    coalitions: int = 3
    colluders: tuple[int, ...] = (2, 3)
    attacks: tuple[AttackSpec, ...] = ()
    limits: tuple[int, ...] = DEFAULT_LIMITS

    def model(self, title: str) -> TracedModel | None:
        """The extra architecture labelled ``title`` (None: the run's model)."""
        for m in self.models:
            if m.title == title:
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`tracing_from_mapping` reads back."""
        return {
            "users": self.users,
            "models": [
                {
                    "model": m.model,
                    "options": dict(m.options),
                    "train": dict(m.train),
                    "train_samples": m.train_samples,
                    "label": m.label,
                }
                for m in self.models
            ],
            "lock": dict(self.lock),
            "mark": dict(self.mark),
            "queries": dict(self.queries),
            "query_pool": self.query_pool,
            "attacked_users": self.attacked_users,
            "coalitions": self.coalitions,
            "colluders": list(self.colluders),
            "attacks": [a.to_dict() for a in self.attacks],
            "limits": list(self.limits),
        }


def _attack(raw: Any, i: int) -> AttackSpec:
    """One entry of ``tracing.attacks``: a lock attack that declares ``attacks_copies``, or
    one of :data:`advparams.tracing.attacks.COPY_ATTACKS`; every setting is checked now."""
    from advparams.attacks import ATTACKS
    from advparams.tracing.attacks import COPY_ATTACKS, copy_attacks

    what = f"tracing.attacks[{i}]"
    spec = attack_spec_from_mapping(raw, what)
    if spec.name not in copy_attacks():
        raise ConfigError(f"{what}.name must be one of {', '.join(copy_attacks())}, got {spec.name!r}")
    registry: Any = COPY_ATTACKS if spec.name in COPY_ATTACKS else ATTACKS
    for setting in spec.settings():
        try:
            registry.build(spec.name, {**dict(spec.options), **setting})
        except ConfigError as exc:
            fields = [f.name for f in dataclasses.fields(registry.get(spec.name).Config)]
            takes = f"takes {', '.join(fields)}" if fields else "takes no options"
            raise ConfigError(f"{what}: {spec.name} {takes} ({exc})") from None
    return spec


def tracing_from_mapping(raw: Any, run_model: str) -> TracingSection:
    """Builds and validates the ``tracing:`` section (``run_model``: the run's architecture)."""
    from advparams.models import MODELS
    from advparams.registry import config_from_dict
    from advparams.schemes.hardened import HardenedConfig
    from advparams.tracing import MarkConfig, QueryConfig
    from advparams.training import TrainConfig

    if not isinstance(raw, Mapping):
        raise ConfigError(f"tracing must be a mapping, got {type(raw).__name__}")
    allowed = {f for f in TracingSection.__dataclass_fields__}
    known_keys(raw, allowed, "tracing")
    models = []
    for i, m_raw in enumerate(raw.get("models") or []):
        m = mapping(m_raw, f"tracing.models[{i}]")
        known_keys(m, {"model", "options", "train", "train_samples", "label"}, f"tracing.models[{i}]")
        if m.get("model") not in MODELS.names():
            raise ConfigError(f"tracing.models[{i}].model must be one of {', '.join(MODELS.names())}")
        label = m.get("label")
        if label is not None and not isinstance(label, str):
            raise ConfigError(f"tracing.models[{i}].label must be a string")
        train = mapping(m.get("train"), f"tracing.models[{i}].train")
        check_train(
            config_from_dict(TrainConfig, train, what=f"tracing.models[{i}].train"), f"tracing.models[{i}].train"
        )
        samples = m.get("train_samples")
        if samples is not None:
            integer(samples, f"tracing.models[{i}].train_samples", 1, MAX_SAMPLES)
        models.append(
            TracedModel(m["model"], mapping(m.get("options"), f"tracing.models[{i}].options"), train, samples, label)
        )
    titles = [run_model] + [m.title for m in models]
    if len(set(titles)) != len(titles):
        raise ConfigError(
            "tracing.models: every model needs its own label (the run's model is " + repr(run_model) + ")"
        )
    lock = mapping(raw.get("lock"), "tracing.lock")
    config_from_dict(HardenedConfig, {**lock, "dither": 23}, what="tracing.lock")
    mark = mapping(raw.get("mark"), "tracing.mark")
    config_from_dict(MarkConfig, mark, what="tracing.mark")
    queries = mapping(raw.get("queries"), "tracing.queries")
    qcfg = config_from_dict(QueryConfig, queries, what="tracing.queries")
    colluders = raw.get("colluders", [2, 3])
    if not isinstance(colluders, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 2 <= c <= 50 for c in colluders
    ):
        raise ConfigError("tracing.colluders must be a list of coalition sizes in [2, 50]")
    limits = raw.get("limits", list(DEFAULT_LIMITS))
    if (
        not isinstance(limits, list)
        or not limits
        or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= qcfg.queries for n in limits)
    ):
        raise ConfigError(f"tracing.limits must be a list of query counts in [1, {qcfg.queries}]")
    section = TracingSection(
        users=integer(raw.get("users", 100), "tracing.users", 1, 100_000),
        models=tuple(models),
        lock=lock,
        mark=mark,
        queries=queries,
        query_pool=integer(raw.get("query_pool", 5000), "tracing.query_pool", 2, 10**7),
        attacked_users=integer(raw.get("attacked_users", 3), "tracing.attacked_users", 0, 100_000),
        coalitions=integer(raw.get("coalitions", 3), "tracing.coalitions", 0, 10_000),
        colluders=tuple(colluders),
        attacks=tuple(_attack(a, i) for i, a in enumerate(raw.get("attacks") or [])),
        limits=tuple(sorted(set(limits))),
    )
    need = section.attacked_users + section.coalitions * sum(section.colluders)
    if need > section.users:
        raise ConfigError(
            f"tracing needs {need} users for {section.attacked_users} attacked copies and the coalitions, "
            f"but lists {section.users}"
        )
    return section


def read_tracing(raw: Any, so_far: Mapping[str, Any]) -> TracingSection:
    """The ``tracing:`` section (:attr:`advparams.house.Section.read`)."""
    return tracing_from_mapping(raw, str(so_far["model"]))


def check_tracing_models(config: Any, run_model: Any) -> None:
    """Each traced architecture builds, and the marks have room in each traced model: at
    most :data:`~advparams.evaluation.limits.MARK_SHARE` of the weights both the hardened
    lock moves and the mark may use (:attr:`advparams.house.Section.check_models`)."""
    from advparams.evaluation.limits import MARK_SHARE
    from advparams.evaluation.model_check import check_architecture, mark_capacity
    from advparams.registry import config_from_dict
    from advparams.tracing.mark import MarkConfig

    section, how, dataset = config.tracing, config.model_output, config.dataset
    traced = [(config.model, run_model)]
    for i, m in enumerate(section.models):
        traced.append((m.title, check_architecture(m.model, m.options, dataset, how, f"tracing.models[{i}].options")))
    positions = config_from_dict(MarkConfig, dict(section.mark), what="tracing.mark").positions
    for title, model in traced:
        try:
            capacity = mark_capacity(model, section.lock, section.mark)
        except ConfigError as exc:
            raise ConfigError(f"tracing.lock or tracing.mark leave no weight of {title} to mark ({exc})") from None
        if positions > int(MARK_SHARE * capacity):
            raise ConfigError(
                f"tracing.mark.positions must be at most {int(MARK_SHARE * capacity)} for {title} (half the "
                f"{capacity} weights its hardened lock moves and the mark may use), got {positions}"
            )


__all__ = [
    "TracedModel",
    "TracingSection",
    "check_tracing_models",
    "read_tracing",
    "tracing_from_mapping",
]
