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
from advparams.evaluation.reading import is_int, known_keys, mapping
from advparams.evaluation.specs import AttackSpec, SchemeSpec, WatermarkSpec, attack_spec_from_mapping, titled
from advparams.evaluation.yaml_keys import refuse_duplicate_keys
from advparams.files import LIMITS, parse_yaml, read_file
from advparams.house import section_keys, sections
from advparams.metrics.accuracy import check_output_adapter
from advparams.models import MODELS
from advparams.plugins import load_plugins, resolve_spec
from advparams.registry import config_from_dict, config_to_dict
from advparams.schemes import SCHEMES
from advparams.training import TrainConfig


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
    seeds: tuple[int, ...] = (0, 1, 2)
    data_dir: str | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    train_samples: int | None = None
    test_samples: int | None = None
    checkpoints: Mapping[int, str] = field(default_factory=dict)
    schemes: tuple[SchemeSpec, ...] = ()
    watermarks: tuple[WatermarkSpec, ...] = ()
    null_models: int = 5
    fpr: float = 1e-6
    users: int = 10
    lock_with: Mapping[str, Any] = field(default_factory=dict)
    attacks: tuple[AttackSpec, ...] = ()
    budgets: tuple[int, ...] = ()
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
        """A JSON/YAML-ready dict that :func:`config_from_mapping` reads back."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "data_dir": self.data_dir,
            "model": self.model,
            "model_options": dict(self.model_options),
            "seeds": list(self.seeds),
            "train": config_to_dict(self.train),
            "train_samples": self.train_samples,
            "test_samples": self.test_samples,
            "checkpoints": {int(k): v for k, v in self.checkpoints.items()},
            "schemes": [
                {"name": s.name, "options": dict(s.options), "match_params": s.match_params, "label": s.label}
                for s in self.schemes
            ],
            "watermarks": [{"name": w.name, "options": dict(w.options), "label": w.label} for w in self.watermarks],
            "null_models": self.null_models,
            "fpr": self.fpr,
            "users": self.users,
            "lock_with": dict(self.lock_with),
            "attacks": [a.to_dict() for a in self.attacks],
            "budgets": list(self.budgets),
            "stealth": self.stealth,
            "histograms": self.histograms,
            # Only when present, so that the fingerprints of earlier runs stay the same.
            **{s.key: s.to_dict(self.sections[s.key]) for s in sections() if self.sections.get(s.key) is not None},
            **({"imports": list(self.imports)} if self.imports else {}),
            **({"model_output": self.model_output} if self.model_output != "auto" else {}),
        }

    def fingerprint(self) -> str:
        """A canonical JSON string: two configs that run the same rows compare equal."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _top_keys() -> set[str]:
    """The keys a config may hold: the house's and every family's section."""
    return {f.name for f in dataclasses.fields(EvalConfig)} - {"sections"} | set(section_keys())


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A run name: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit
(it names a folder under ``runs/eval/``, so it holds no path separator and no ``..``)."""
MAX_SEED = 2**31 - 1


def _optional_str(v: Any, what: str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{what} must be a string, got {type(v).__name__}")
    return v


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
        if not isinstance(raw[req], str):
            raise ConfigError(f"{req} must be a string, got {type(raw[req]).__name__}")
    if not NAME_PATTERN.fullmatch(raw["name"]) or ".." in raw["name"]:
        raise ConfigError(
            f"name {raw['name'][:40]!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    model_output = raw.get("model_output", "auto")
    if not isinstance(model_output, str):
        raise ConfigError("model_output must be a string (auto, logits, first, key:NAME or index:N)")
    check_output_adapter(model_output)
    DATASETS.get(raw["dataset"])
    MODELS.get(raw["model"])
    _optional_str(raw.get("data_dir"), "data_dir")
    seeds = raw.get("seeds", [0, 1, 2])
    if not isinstance(seeds, list) or not seeds or not all(is_int(s) and 0 <= s <= MAX_SEED for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers in [0, {MAX_SEED}]")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"seeds lists {len(seeds)} seeds; at most {MAX_SEEDS} are allowed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds must not repeat")
    train = config_from_dict(TrainConfig, mapping(raw.get("train"), "train"), what="train")
    check_train(train, "train")

    schemes: list[SchemeSpec] = []
    for i, s_raw in enumerate(raw.get("schemes") or []):
        s = mapping(s_raw, f"schemes[{i}]")
        known_keys(s, {"name", "options", "match_params", "label"}, f"schemes[{i}]")
        if "name" not in s:
            raise ConfigError(f"schemes[{i}] needs a name")
        opts = mapping(s.get("options"), f"schemes[{i}].options")
        _optional_str(s["name"], f"schemes[{i}].name")
        _optional_str(s.get("match_params"), f"schemes[{i}].match_params")
        _optional_str(s.get("label"), f"schemes[{i}].label")
        SCHEMES.build(s["name"], opts)  # validates name and options
        spec = SchemeSpec(s["name"], opts, s.get("match_params"), s.get("label"))
        if spec.match_params is not None and spec.match_params not in [x.title for x in schemes]:
            raise ConfigError(
                f"schemes[{i}] ({spec.title}) matches {spec.match_params!r}, which must be listed before it"
            )
        if spec.match_params is not None and SCHEMES.get(spec.name).budget_option is None:
            raise ConfigError(f"schemes[{i}] ({spec.title}) cannot match a count of values: its size is not one")
        if spec.title in [x.title for x in schemes]:
            raise ConfigError(f"scheme {spec.title!r} is listed twice; give one a label")
        schemes.append(spec)
    from advparams.watermarks import WATERMARKS

    watermarks: list[WatermarkSpec] = []
    for i, w_raw in enumerate(raw.get("watermarks") or []):
        w = mapping(w_raw, f"watermarks[{i}]")
        known_keys(w, {"name", "options", "label"}, f"watermarks[{i}]")
        if "name" not in w:
            raise ConfigError(f"watermarks[{i}] needs a name")
        opts = mapping(w.get("options"), f"watermarks[{i}].options")
        _optional_str(w["name"], f"watermarks[{i}].name")
        _optional_str(w.get("label"), f"watermarks[{i}].label")
        WATERMARKS.build(w["name"], opts)  # validates name and options
        wspec = WatermarkSpec(w["name"], opts, w.get("label"))
        if wspec.title in [x.title for x in watermarks] + [x.title for x in schemes]:
            raise ConfigError(f"{wspec.title!r} is listed twice; give one a label")
        watermarks.append(wspec)
    so_far: dict[str, Any] = {
        "model": raw["model"],
        "schemes": [x.title for x in schemes],
        "watermarks": [x.title for x in watermarks],
    }
    read: dict[str, Any] = {}
    for section in sections():  # each family's, in family order (a later one may read an earlier)
        if raw.get(section.key) is not None:
            read[section.key] = section.read(raw[section.key], {**so_far, **read})
    work = ["schemes", "watermarks", *(s.key for s in sections() if s.is_work)]
    if not schemes and not watermarks and not any(s.is_work and s.key in read for s in sections()):
        raise ConfigError(f"the config lists {', '.join(f'no {k}' for k in work[:-1])} and no {work[-1]}")
    null_models = raw.get("null_models", 5)
    if not is_int(null_models) or not 1 <= null_models <= 1000:
        raise ConfigError("null_models must be an integer in [1, 1000]")
    fpr = raw.get("fpr", 1e-6)
    if not isinstance(fpr, (int, float)) or isinstance(fpr, bool) or not 0.0 < float(fpr) < 1.0:
        raise ConfigError("fpr must be a number in (0, 1)")
    users = raw.get("users", 10)
    if not is_int(users) or not 1 <= users <= 10_000:
        raise ConfigError("users must be an integer in [1, 10000]")
    lock_with = mapping(raw.get("lock_with"), "lock_with")
    if lock_with:
        known_keys(lock_with, {"name", "options"}, "lock_with")
        SCHEMES.build(str(lock_with.get("name")), mapping(lock_with.get("options"), "lock_with.options"))

    attacks: list[AttackSpec] = []
    for i, a_raw in enumerate(raw.get("attacks") or []):
        aspec = attack_spec_from_mapping(a_raw, f"attacks[{i}]")
        for setting in aspec.settings():
            ATTACKS.build(aspec.name, {**aspec.options, **setting})  # validates every setting now
        attacks.append(aspec)

    budgets = raw.get("budgets") or []
    if (
        not isinstance(budgets, list)
        or len(budgets) > MAX_BUDGETS
        or not all(is_int(b) and 1 <= b <= 2**40 for b in budgets)
    ):
        raise ConfigError(f"budgets must be a list of at most {MAX_BUDGETS} integers in [1, 2**40]")
    for name in ("train_samples", "test_samples"):
        v = raw.get(name)
        if v is not None and (not is_int(v) or not 1 <= v <= MAX_SAMPLES):
            raise ConfigError(f"{name} must be an integer in [1, {MAX_SAMPLES}] or null")
    checkpoints = mapping(raw.get("checkpoints"), "checkpoints")
    if not all(is_int(k) and isinstance(v, str) for k, v in checkpoints.items()):
        raise ConfigError("checkpoints maps seeds (integers) to checkpoint folders (strings)")
    ckpts: dict[int, str] = {int(k): str(v) for k, v in checkpoints.items()}
    for name in ("stealth", "histograms"):
        if not isinstance(raw.get(name, True), bool):
            raise ConfigError(f"{name} must be true or false")
    config = EvalConfig(
        name=raw["name"],
        dataset=raw["dataset"],
        model=raw["model"],
        seeds=tuple(seeds),
        data_dir=raw.get("data_dir"),
        model_options=mapping(raw.get("model_options"), "model_options"),
        train=train,
        train_samples=raw.get("train_samples"),
        test_samples=raw.get("test_samples"),
        checkpoints=ckpts,
        schemes=tuple(schemes),
        watermarks=tuple(watermarks),
        null_models=null_models,
        fpr=float(fpr),
        users=users,
        lock_with=lock_with,
        attacks=tuple(attacks),
        budgets=tuple(budgets),
        stealth=raw.get("stealth", True),
        histograms=raw.get("histograms", True),
        sections=read,
        imports=tuple(imports),
        model_output=model_output,
    )
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
