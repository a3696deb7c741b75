"""The evaluation configuration: what to train, which schemes to lock with, which attacks
to run, over which seeds. Read from YAML, validated in one place, written back resolved.

Example (``configs/fashion-mnist.yaml`` is the full one)::

    name: fmnist-small
    dataset: fashion-mnist
    model: lenet
    seeds: [0, 1, 2]
    train: {epochs: 10}
    schemes:
      - name: advparams
      - name: random
        match_params: advparams    # same number of changed values as advparams
    attacks:
      - name: finetune
        options: {epochs: 5}
        grid: {data_fraction: [0.01, 0.05]}
      - name: prune
        grid: {scope: [global, layer], rate: [0.1, 0.5, 0.9]}
    budgets: [1, 3, 10, 30]
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advparams.attacks import ATTACKS
from advparams.data import DATASETS
from advparams.errors import AdvParamsError, ConfigError
from advparams.evaluation.limits import MAX_BUDGETS, MAX_SAMPLES, MAX_SEEDS, check_train
from advparams.evaluation.model_check import check_models
from advparams.evaluation.reading import is_int, known_keys, mapping, option, read_typed, write_typed
from advparams.evaluation.specs import AttackSpec, SchemeSpec, WatermarkSpec, attack_spec_from_mapping, titled
from advparams.evaluation.yaml_keys import refuse_duplicate_keys
from advparams.files import LIMITS, parse_yaml, read_file
from advparams.house import section_keys, sections
from advparams.metrics.accuracy import check_output_adapter
from advparams.models import MODELS
from advparams.plugins import load_plugins, resolve_spec
from advparams.schemes import SCHEMES
from advparams.training import TrainConfig

MAX_SEED = 2**31 - 1
"""The largest seed of an evaluation."""


@dataclass(frozen=True)
class EvalConfig:
    """A whole evaluation.

    Attributes:
        name: the run's name (rows carry it).
        dataset: registered data set.
        data_dir: folder with its files (``None``: the data set's default places).
        model: registered model architecture.
        model_options: extra model arguments (the data set's shape is filled in).
        seeds: one trained model, lock and attack per seed.
        train: how models are trained (when no checkpoint is given).
        train_samples: train on the first N of a seeded permutation (``None``: all).
        test_samples: measure accuracy on the first N test images (``None``: all).
        checkpoints: seed -> checkpoint folder to load instead of training.
        schemes: the schemes, in order.
        watermarks: the watermarks, in order (each attack runs on each of them too).
        null_models: independently trained models (seeds 1000, 1001, ...) on which
            every watermark's verification threshold is calibrated.
        fpr: the false-positive rate the watermark thresholds are set for.
        users: users registered to measure fingerprint authentication (schemes that
            carry users' fingerprints).
        lock_with: a scheme (``{name, options}``) that locks every watermarked model,
            to check that the watermark verifies after unlocking (empty: none).
        attacks: the attacks and their settings.
        budgets: budgets for the accuracy-against-size curve (empty: no curve).
        stealth: compute KS tests, ranks and z-scores of every lock.
        histograms: keep per-layer weight histograms (first seed) for the plots.
        sections: the families' config sections (:attr:`advparams.house.Family.section`),
            by key, each also read as an attribute (``config.backdoors``: the backdoors
            to implant and measure; ``config.detection``, ``config.fingerprints``,
            ``config.tracing``; ``None`` where the config has no such section).
        imports: modules or ``.py`` files imported first, in the driver and in every
            worker (your own architecture's registration; files relative to the config
            file's folder; see :mod:`advparams.plugins`).
        model_output: how model outputs become class scores (``auto``, ``logits``,
            ``first``, ``key:NAME``, ``index:N``; see :func:`advparams.metrics.model_output`).
    """

    name: str
    dataset: str
    model: str
    seeds: tuple[int, ...] = option((0, 1, 2), lo=0, hi=MAX_SEED, nonempty=True)
    data_dir: str | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    train_samples: int | None = option(None, lo=1, hi=MAX_SAMPLES)
    test_samples: int | None = option(None, lo=1, hi=MAX_SAMPLES)
    checkpoints: Mapping[int, str] = field(default_factory=dict)
    schemes: tuple[SchemeSpec, ...] = ()
    watermarks: tuple[WatermarkSpec, ...] = ()
    null_models: int = option(5, lo=1, hi=1000)
    fpr: float = option(1e-6, lo=0.0, hi=1.0, open_range=True)
    users: int = option(10, lo=1, hi=10_000)
    lock_with: Mapping[str, Any] = field(default_factory=dict)
    attacks: tuple[AttackSpec, ...] = ()
    budgets: tuple[int, ...] = option((), lo=1, hi=2**40)
    stealth: bool = True
    histograms: bool = True
    sections: Mapping[str, Any] = field(default_factory=dict)
    imports: tuple[str, ...] = ()
    model_output: str = "auto"

    def __getattr__(self, name: str) -> Any:
        # A registered family's section, by its key (config.tracing); None when absent.
        if not name.startswith("_") and name in section_keys():
            return self.__dict__.get("sections", {}).get(name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def with_section(self, key: str, value: Any) -> EvalConfig:
        """A copy with section ``key`` replaced by ``value`` (``None``: removed)."""
        rest = {k: v for k, v in self.sections.items() if k != key}
        return dataclasses.replace(self, sections=rest if value is None else {**rest, key: value})

    def scheme(self, label: str) -> SchemeSpec:
        """The scheme with this label."""
        return titled(self.schemes, label, "scheme")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :func:`config_from_mapping` reads back (the same
        writer as every section's, :func:`~advparams.evaluation.reading.write_typed`)."""
        out = {k: v for k, v in write_typed(self).items() if k not in ("sections", "imports", "model_output")}
        out["checkpoints"] = {int(k): v for k, v in self.checkpoints.items()}
        # Only when present, so that the fingerprints of earlier runs stay the same.
        out.update({s.key: s.to_dict(self.sections[s.key]) for s in sections() if self.sections.get(s.key) is not None})
        if self.imports:
            out["imports"] = list(self.imports)
        if self.model_output != "auto":
            out["model_output"] = self.model_output
        return out

    def fingerprint(self) -> str:
        """A canonical JSON string: two configs that run the same rows compare equal."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _top_keys() -> set[str]:
    """The keys a config may hold: the house's and every family's section."""
    return {f.name for f in dataclasses.fields(EvalConfig)} - {"sections"} | set(section_keys())


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A run name: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit
(it names a folder under ``runs/eval/``, so it holds no path separator and no ``..``)."""


def config_from_mapping(raw: Mapping[str, Any]) -> EvalConfig:
    """Builds and validates an :class:`EvalConfig`; every mistake is one clear ConfigError.

    Scheme and attack options are checked against their registered configurations
    (unknown option, bad value), every architecture is built on the meta device
    (:mod:`advparams.evaluation.model_check`) and every count is bounded
    (:mod:`advparams.evaluation.limits`), so a typo fails before any training starts.
    """
    try:
        return _config_from_mapping(raw)
    except AdvParamsError:
        raise
    except (TypeError, ValueError, AttributeError, RuntimeError, OverflowError) as exc:
        # A value of a type no check above foresaw (options are handed to dataclasses).
        raise ConfigError(
            f"the config holds a value of the wrong type ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None


def _check_schemes(config: EvalConfig) -> None:
    """Every scheme built with its options, matched only to one listed before it, listed once."""
    seen: list[str] = []
    for i, spec in enumerate(config.schemes):
        SCHEMES.build(spec.name, dict(spec.options))  # validates name and options
        if spec.match_params is not None and spec.match_params not in seen:
            raise ConfigError(
                f"schemes[{i}] ({spec.title}) matches {spec.match_params!r}, which must be listed before it"
            )
        if spec.match_params is not None and SCHEMES.get(spec.name).budget_option is None:
            raise ConfigError(f"schemes[{i}] ({spec.title}) cannot match a count of values: its size is not one")
        if spec.title in seen:
            raise ConfigError(f"scheme {spec.title!r} is listed twice; give one a label")
        seen.append(spec.title)


def _check_members(config: EvalConfig) -> None:
    """The watermarks and the lock of watermarked models built with their options; every
    attack setting built; the seeds and budgets within their counts."""
    from advparams.watermarks import WATERMARKS

    seen = [s.title for s in config.schemes]
    for spec in config.watermarks:
        WATERMARKS.build(spec.name, dict(spec.options))  # validates name and options
        if spec.title in seen:
            raise ConfigError(f"{spec.title!r} is listed twice; give one a label")
        seen.append(spec.title)
    if config.lock_with:
        known_keys(config.lock_with, {"name", "options"}, "lock_with")
        SCHEMES.build(str(config.lock_with.get("name")), mapping(config.lock_with.get("options"), "lock_with.options"))
    for aspec in config.attacks:
        for setting in aspec.settings():
            ATTACKS.build(aspec.name, {**aspec.options, **setting})  # validates every setting now
    if len(config.seeds) > MAX_SEEDS:
        raise ConfigError(f"seeds lists {len(config.seeds)} seeds; at most {MAX_SEEDS} are allowed")
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError("seeds must not repeat")
    if len(config.budgets) > MAX_BUDGETS:
        raise ConfigError(f"budgets must be a list of at most {MAX_BUDGETS} integers in [1, 2**40]")
    if not all(is_int(k) for k in config.checkpoints):
        raise ConfigError("checkpoints maps seeds (integers) to checkpoint folders (strings)")


def _config_from_mapping(raw: Mapping[str, Any]) -> EvalConfig:
    raw = mapping(raw, "the config")
    imports = raw.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(s, str) and s.strip() for s in imports):
        raise ConfigError("imports must be a list of module names or .py files")
    imports = [resolve_spec(s) for s in imports]
    load_plugins(imports, environment=False, entry_points=False)
    known_keys(raw, _top_keys(), "the config")  # an imported family may add a section
    for req in ("name", "dataset", "model"):
        if not raw.get(req):
            raise ConfigError(f"the config needs {req!r}")
    attacks = raw.get("attacks") or []
    if not isinstance(attacks, list):
        raise ConfigError("attacks must be a list of attacks")
    core = {k: v for k, v in raw.items() if k not in (*section_keys(), "attacks", "imports") and v is not None}
    config = read_typed(EvalConfig, core, "")
    if not NAME_PATTERN.fullmatch(config.name) or ".." in config.name:
        raise ConfigError(
            f"name {config.name[:40]!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    check_output_adapter(config.model_output)
    DATASETS.get(config.dataset)
    MODELS.get(config.model)
    check_train(config.train, "train")
    specs = tuple(attack_spec_from_mapping(a, f"attacks[{i}]") for i, a in enumerate(attacks))
    config = dataclasses.replace(config, attacks=specs, imports=tuple(imports))
    _check_schemes(config)
    _check_members(config)
    so_far: dict[str, Any] = {
        "model": config.model,
        "schemes": [x.title for x in config.schemes],
        "watermarks": [x.title for x in config.watermarks],
    }
    read: dict[str, Any] = {}
    for section in sections():  # each family's, in family order (a later one may read an earlier)
        if raw.get(section.key) is not None:
            read[section.key] = section.read(raw[section.key], {**so_far, **read})
    work = ["schemes", "watermarks", *(s.key for s in sections() if s.is_work)]
    if not config.schemes and not config.watermarks and not any(s.is_work and s.key in read for s in sections()):
        raise ConfigError(f"the config lists {', '.join(f'no {k}' for k in work[:-1])} and no {work[-1]}")
    config = dataclasses.replace(config, sections=read)
    check_models(config)
    return config


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> EvalConfig:
    """Reads a YAML config file (``yaml.safe_load``: no Python objects; a key written
    twice in one mapping is refused with its lines) and validates it.

    Args:
        path: the YAML file.
        overrides: top-level keys to replace (e.g. ``{"seeds": [0]}``).
    """
    p = Path(path)
    data = read_file(p, what="config file", limit=LIMITS["config"], error=ConfigError)
    raw = parse_yaml(data, what=f"config file {p}", error=ConfigError)
    refuse_duplicate_keys(data.decode("utf-8"), what=f"config file {p}")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    raw = {**raw, **dict(overrides or {})}
    if isinstance(raw.get("imports"), list):  # files relative to the config's folder
        raw["imports"] = [resolve_spec(s, p.parent) if isinstance(s, str) else s for s in raw["imports"]]
    return config_from_mapping(raw)
