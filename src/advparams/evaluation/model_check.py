"""The architectures an evaluation config names, checked before any work.

Each one (the run's ``model`` with ``model_options``, ``fingerprints.other_models[]``,
``tracing.models[]``) is built once on the meta device, which allocates nothing, with
its options over the data set's shape; its size is bounded; a batch of two images of the
data set's shape goes through it and must come out as at least one class score per class.
A factory's error (a negative width, an unknown option, a class count of -3, a model
that wants 3 channels of a grey data set) becomes a :class:`~advparams.errors.ConfigError`
naming the value's place in the config, instead of a crash minutes into the run. Models
are registered factories without an options dataclass (:mod:`advparams.models`), so
building one is the only check that covers the user's own architectures too.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from advparams.errors import AdvParamsError, ConfigError
from advparams.evaluation.limits import MAX_MODEL_PARAMETERS
from advparams.house import sections

if TYPE_CHECKING:
    from advparams.evaluation.config import EvalConfig

log = logging.getLogger(__name__)

CPU_RETRY_PARAMETERS = 5 * 10**7
"""A model whose forward pass the meta device cannot run (an op without a meta kernel, a
value read with ``.item()``) is run on the CPU instead, up to this many parameters (200 MB
in float32); a larger one is not run at all."""


def _short(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def _arguments(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    from advparams.data import DATASETS

    return {**DATASETS.get(dataset).model_options, **dict(options)}


def build_meta(name: str, options: Mapping[str, Any], dataset: str, what: str) -> nn.Module:
    """Registered model ``name`` built on the meta device with ``options`` over the data
    set's shape; ``what`` names the options in the config.

    Raises:
        ConfigError: the factory refuses the options, or the model is too large.
    """
    from advparams.models import MODELS, count_parameters

    MODELS.get(name)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "zero-element tensors": the error, if any, is ours to give
            model = MODELS.build(name, _arguments(dataset, options))
    except AdvParamsError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (a registered factory may be the user's code)
        raise ConfigError(f"{what}: {name} cannot be built with these options ({_short(exc)})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{what}: the factory of {name} returned a {type(model).__name__}, not a torch module")
    size = count_parameters(model)
    if size > MAX_MODEL_PARAMETERS:
        raise ConfigError(f"{what}: {name} would have {size} parameters; at most {MAX_MODEL_PARAMETERS} are allowed")
    return model


def _scores(model: nn.Module, x: torch.Tensor, how: str, task: str = "classification") -> torch.Tensor:
    """Class scores ``[N, C]``; for a language model, next-token scores ``[N * (L - 1), V]``."""
    from advparams.metrics.accuracy import logits_of, model_output

    with torch.no_grad(), model_output(how):
        if task == "causal-lm":
            from advparams.tasks import CausalLM

            return CausalLM().outputs(model.eval(), x, torch.zeros(len(x), dtype=torch.long, device=x.device))[0]
        return logits_of(model.eval(), x)


def check_forward(model: nn.Module, name: str, options: Mapping[str, Any], dataset: str, how: str, what: str) -> None:
    """A batch of the data set's shape through ``model`` (built by :func:`build_meta`)
    must give at least one class score per class (a language model: next-token scores
    ``[N, L, V]``, one per token of the vocabulary).

    Raises:
        ConfigError: it fails, or gives too few scores.
    """
    from advparams.data import DATASETS
    from advparams.models import build_model, count_parameters

    spec = DATASETS.get(dataset)
    try:
        scores = _scores(model, spec.example(2, "meta"), how, spec.task)
    except AdvParamsError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    except Exception as meta_exc:  # noqa: BLE001  (the meta device lacks some ops: try the CPU)
        if count_parameters(model) > CPU_RETRY_PARAMETERS:
            log.debug("%s: not run before the evaluation (%s)", what, _short(meta_exc))
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cpu = build_model(name, _arguments(dataset, options), seed=0)
            scores = _scores(cpu, spec.example(2), how, spec.task)
        except AdvParamsError as exc:
            raise ConfigError(f"{what}: {exc}") from None
        except Exception as exc:  # noqa: BLE001  (the user's code may raise anything)
            raise ConfigError(
                f"{what}: {name} cannot take the {dataset} inputs ({spec.shape_text}) with these options "
                f"({_short(exc)})"
            ) from None
    if scores.shape[1] < spec.num_classes:
        raise ConfigError(
            f"{what}: {name} gives {scores.shape[1]} class scores, but {dataset} has {spec.num_classes} classes"
        )


def check_architecture(name: str, options: Mapping[str, Any], dataset: str, how: str, what: str) -> nn.Module:
    """:func:`build_meta` then :func:`check_forward`; returns the meta model."""
    model = build_meta(name, options, dataset, what)
    check_forward(model, name, options, dataset, how, what)
    return model


def mark_capacity(model: nn.Module, lock: Mapping[str, Any], mark: Mapping[str, Any]) -> int:
    """How many weights of ``model`` a traceable key's marks may use: those of the tensors
    both the hardened lock moves (``lock``: its options) and the mark may mark (``mark``:
    :class:`~advparams.tracing.MarkConfig`'s options)."""
    from advparams.registry import config_from_dict
    from advparams.schemes.hardened import HardenedConfig
    from advparams.schemes.locking import candidate_parameters
    from advparams.tracing.mark import (
        MarkConfig,
        markable_names,  # the mark's own filter, not a copy
    )

    hardened = config_from_dict(HardenedConfig, {**dict(lock), "dither": 23}, what="tracing.lock")
    moved = candidate_parameters(
        model, include=hardened.include, exclude=hardened.exclude, include_1d=hardened.include_1d
    )
    marked = set(markable_names(model.state_dict(), config_from_dict(MarkConfig, dict(mark), what="tracing.mark")))
    counts = (round(hardened.fraction * p.numel()) for n, p in moved.items() if n in marked)
    return sum(c for c in counts if c >= 2)


def check_candidates(model: nn.Module, scheme: str, options: Mapping[str, Any], what: str) -> None:
    """The parameters a scheme's ``include``/``exclude``/``include_1d`` options leave it
    (what every lock starts from) are not none.

    Raises:
        ConfigError: naming ``what`` (the scheme's options in the config).
    """
    from advparams.schemes import SCHEMES
    from advparams.schemes.locking import candidate_parameters

    cfg = SCHEMES.build(scheme, dict(options)).config
    try:
        candidate_parameters(
            model,
            include=getattr(cfg, "include", ()),
            exclude=getattr(cfg, "exclude", ()),
            include_1d=getattr(cfg, "include_1d", False),
        )
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc} in the run's model ({type(model).__name__})") from None


def check_models(config: EvalConfig) -> None:
    """Every architecture of ``config``, the parameters each scheme may change in the
    run's model, and each family's own checks (:attr:`advparams.house.Section.check_models`:
    the tracing marks' room in each traced model, the fingerprints' other models).

    Raises:
        ConfigError: naming the first value at fault by its place in the config.
    """
    how, dataset = config.model_output, config.dataset
    run_model = check_architecture(config.model, config.model_options, dataset, how, "model_options")
    for i, spec in enumerate(config.schemes):
        check_candidates(run_model, spec.name, spec.options, f"schemes[{i}].options")
    if config.lock_with:
        check_candidates(
            run_model, str(config.lock_with["name"]), config.lock_with.get("options") or {}, "lock_with.options"
        )
    for section in sections():  # each family's own checks of its section
        if section.check_models is not None and config.sections.get(section.key) is not None:
            section.check_models(config, run_model)


__all__ = [
    "CPU_RETRY_PARAMETERS",
    "build_meta",
    "check_architecture",
    "check_candidates",
    "check_forward",
    "check_models",
    "mark_capacity",
]
