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
from advparams.evaluation.reading import mapping, option, read_typed, write_typed
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
    train_samples: int | None = option(None, lo=1, hi=MAX_SAMPLES)
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
        black_box: make secret queries and trace from answers too; ``false`` for models
            whose inputs cannot be interpolated (token ids): white-box tracing only. A
            language model's queries are secret prompts (windows of its training text),
            traced from its log-probabilities and from its text alone.
        prompt_length: a language model's prompts, in tokens (None: whole windows).
        prompt_stride: candidate prompts start every this many tokens of each window of
            the pool (None: one per window, its first ``prompt_length`` tokens).
    """

    users: int = option(100, lo=1, hi=100_000)
    models: tuple[TracedModel, ...] = ()
    lock: Mapping[str, Any] = field(default_factory=dict)
    mark: Mapping[str, Any] = field(default_factory=dict)
    queries: Mapping[str, Any] = field(default_factory=dict)
    query_pool: int = option(5000, lo=2, hi=10**7)
    attacked_users: int = option(3, lo=0, hi=100_000)
    coalitions: int = option(3, lo=0, hi=10_000)
    colluders: tuple[int, ...] = option((2, 3), lo=2, hi=50)
    attacks: tuple[AttackSpec, ...] = ()
    limits: tuple[int, ...] = option(DEFAULT_LIMITS, lo=1, hi=10**9, nonempty=True)
    black_box: bool = True
    prompt_length: int | None = option(None, lo=2, hi=10**6)
    prompt_stride: int | None = option(None, lo=1, hi=10**6)

    def model(self, title: str) -> TracedModel | None:
        """The extra architecture labelled ``title`` (None: the run's model)."""
        for m in self.models:
            if m.title == title:
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`tracing_from_mapping` reads back
        (``black_box`` only when off and the prompts' options only when set, so configs
        written before them stay the same)."""
        out = dict(write_typed(self))
        if out.get("black_box"):
            del out["black_box"]
        for name in ("prompt_length", "prompt_stride"):
            if out.get(name) is None:
                out.pop(name, None)
        return out


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


def _check_models(section: TracingSection, run_model: str) -> None:
    """Every traced architecture registered, its training options valid, its label its own."""
    from advparams.models import MODELS
    from advparams.registry import config_from_dict
    from advparams.training import TrainConfig

    for i, m in enumerate(section.models):
        if m.model not in MODELS.names():
            raise ConfigError(f"tracing.models[{i}].model must be one of {', '.join(MODELS.names())}")
        what = f"tracing.models[{i}].train"
        check_train(config_from_dict(TrainConfig, dict(m.train), what=what), what)
    titles = [run_model] + [m.title for m in section.models]
    if len(set(titles)) != len(titles):
        raise ConfigError(f"tracing.models: every model needs its own label (the run's model is {run_model!r})")


def tracing_from_mapping(raw: Any, run_model: str) -> TracingSection:
    """Reads the ``tracing:`` section (:func:`~advparams.evaluation.reading.read_typed`; its
    attacks through :func:`_attack`) and checks it (``run_model``: the run's architecture):
    the lock's, marks' and queries' options, the query counts, enough users."""
    from advparams.registry import config_from_dict
    from advparams.schemes.hardened import HardenedConfig
    from advparams.tracing import MarkConfig, QueryConfig

    attacks = mapping(raw, "tracing").get("attacks") or []
    if not isinstance(attacks, list):
        raise ConfigError("tracing.attacks must be a list of attacks")
    section = read_typed(TracingSection, {k: v for k, v in dict(raw).items() if k != "attacks"}, "tracing")
    _check_models(section, run_model)
    config_from_dict(HardenedConfig, {**dict(section.lock), "dither": 23}, what="tracing.lock")
    config_from_dict(MarkConfig, dict(section.mark), what="tracing.mark")
    qcfg = config_from_dict(QueryConfig, dict(section.queries), what="tracing.queries")
    if max(section.limits) > qcfg.queries:
        raise ConfigError(f"tracing.limits must be a list of query counts in [1, {qcfg.queries}]")
    section = dataclasses.replace(
        section,
        attacks=tuple(_attack(a, i) for i, a in enumerate(attacks)),
        limits=tuple(sorted(set(section.limits))),
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
    """Black-box tracing only on images; each traced architecture builds, and the marks
    have room in each traced model: at
    most :data:`~advparams.evaluation.limits.MARK_SHARE` of the weights both the hardened
    lock moves and the mark may use (:attr:`advparams.house.Section.check_models`)."""
    from advparams.data import DATASETS
    from advparams.evaluation.limits import MARK_SHARE
    from advparams.evaluation.model_check import check_architecture, mark_capacity
    from advparams.registry import config_from_dict
    from advparams.tracing.mark import MarkConfig

    section, how, dataset = config.tracing, config.model_output, config.dataset
    spec = DATASETS.get(dataset)
    if section.black_box and spec.vocab_size is not None and spec.task != "causal-lm":
        raise ConfigError(
            f"tracing: a classifier's black-box queries are made between images, and {dataset} holds token ids; "
            "set tracing.black_box: false (white-box tracing only)"
        )
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
