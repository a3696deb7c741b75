"""The evaluation harness: train (or load) -> lock with every scheme and embed every
watermark -> every attack, over seeds, one JSON line per result.

The run folder and its layout are :mod:`advparams.evaluation.run`.

Re-running with the same configuration skips every row already in ``results.jsonl``
and reuses the saved models and locks, so an interrupted run goes on where it stopped.
Models are trained with :func:`advparams.training.train_from_seed`, which draws every
random number from the seed under :func:`advparams._rng.isolated_seed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advparams.attacks import ATTACKS, AttackResult
from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.data import DATASETS, ImageDataset, load_dataset
from advparams.data.base import iter_batches
from advparams.devices import model_device, resolve_device
from advparams.environment import environment
from advparams.errors import AdvParamsError, ConfigError, KeyMismatchError
from advparams.evaluation.config import AttackSpec, EvalConfig, SchemeSpec, WatermarkSpec
from advparams.evaluation.rows import ResultRow, row_key
from advparams.evaluation.run import RunFolder
from advparams.fingerprint import model_fingerprint, state_equal
from advparams.keys import Key, load_key
from advparams.locked import save_locked
from advparams.metrics import accuracy, detection_scores, stealth_summary
from advparams.schemes import SCHEMES, LockResult
from advparams.training import train_from_seed
from advparams.watermarks import WATERMARKS, Calibration, WatermarkKey, calibrate
from advparams.watermarks.keyfile import load_watermark_key, save_watermark_key

log = logging.getLogger(__name__)


# Attack info entries that are too large for a row; their sizes are kept as counts.
_BULKY = ("suspects", "samples", "leaked_positions")


@dataclass(frozen=True)
class HarnessProgress:
    """Passed to the progress callback after each unit of work."""

    done: int
    total: int
    label: str
    skipped: bool


def _option_fields(kind: str, name: str) -> set[str]:
    registry = SCHEMES if kind == "scheme" else ATTACKS
    return {f.name for f in fields(registry.get(name).Config)}


def _with_seed(kind: str, name: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
    if "seed" in _option_fields(kind, name):
        return {**options, "seed": seed}
    return dict(options)


def _sweeps_budget(spec: SchemeSpec) -> bool:
    """Whether the budget sweep (a count of changed values) applies to the scheme."""
    return SCHEMES.get(spec.name).budget_option is not None


def _slim_info(info: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in info.items():
        if k in _BULKY:
            continue
        if isinstance(v, list) and len(v) > 100:
            out[f"{k}_count"] = len(v)
            continue
        out[k] = v
    return out


def _histograms(original: nn.Module, locked: nn.Module, key: Key, bins: int = 50) -> dict[str, Any]:
    """Per touched tensor: binned original and locked values, and the bins the changed
    values fall in. Binned only: no positions and no original values (see _stealth_row)."""
    a, b = original.state_dict(), locked.state_dict()
    layers = {}
    for e in key.changes(locked):
        ta, tb = a[e.name].detach().double().cpu().reshape(-1), b[e.name].detach().double().cpu().reshape(-1)
        # Bins span the locked tensor's range (what anyone holding the locked model sees);
        # original values beyond it are counted in the edge bins, so that no original
        # value is written out.
        lo, hi = float(tb.min()), float(tb.max())
        if hi <= lo:
            hi = lo + 1.0
        layers[e.name] = {
            "range": [lo, hi],
            "original": torch.histc(ta.clamp(lo, hi), bins, lo, hi).long().tolist(),
            "locked": torch.histc(tb, bins, lo, hi).long().tolist(),
            "changed": torch.histc(e.locked.double(), bins, lo, hi).long().tolist(),
        }
    return layers


def _stealth_row(original: nn.Module, locked: nn.Module, key: Key) -> dict[str, Any]:
    """The stealth summary without key material: aggregate statistics and per-tensor KS
    tests only. Per-value z-scores are left out: with the locked model they single out the
    changed values, which is the key."""
    summary = stealth_summary(original, locked, key)
    del summary["per_value"]
    return summary


class Harness:
    """Runs one evaluation configuration into one run folder.

    Args:
        config: the evaluation.
        out: the run folder.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        force: discard a run folder of a different configuration.
        progress: called after each unit of work.
    """

    def __init__(
        self,
        config: EvalConfig,
        out: str | Path,
        *,
        device: str = "auto",
        force: bool = False,
        progress: Callable[[HarnessProgress], None] | None = None,
    ) -> None:
        self.config = config
        self.run_folder = RunFolder(out)
        self.out = self.run_folder.path
        self.device = resolve_device(device)
        self.force = force
        self.progress = progress
        self._done = 0
        self._total = 0

    # -- bookkeeping ------------------------------------------------------------------
    def _tick(self, label: str, skipped: bool) -> None:
        self._done += 1
        if self.progress is not None:
            self.progress(HarnessProgress(self._done, self._total, label, skipped))

    def _count_units(self) -> int:
        cfg = self.config
        attacks = sum(len(list(a.settings())) for a in cfg.attacks)
        per_seed = sum(1 + attacks + len(cfg.budgets) * _sweeps_budget(s) for s in cfg.schemes)
        per_seed += len(cfg.watermarks) * (1 + attacks)
        return len(cfg.seeds) * (1 + per_seed) + (cfg.null_models if cfg.watermarks else 0)

    def _has(self, *key_parts: Any) -> bool:
        return row_key(*key_parts) in self._rows

    def _get(self, *key_parts: Any) -> ResultRow | None:
        return self._rows.get(row_key(*key_parts))

    def _write(self, row: ResultRow) -> None:
        self._writer.write(row)
        self._rows[row.key] = row

    # -- data ---------------------------------------------------------------------------
    def _data(self) -> tuple[ImageDataset, ImageDataset]:
        cfg = self.config
        train_data = load_dataset(cfg.dataset, "train", cfg.data_dir)
        test_data = load_dataset(cfg.dataset, "test", cfg.data_dir)
        if cfg.train_samples is not None and cfg.train_samples < len(train_data):
            g = torch.Generator().manual_seed(0)
            train_data = train_data.subset(torch.randperm(len(train_data), generator=g)[: cfg.train_samples])
        if cfg.test_samples is not None and cfg.test_samples < len(test_data):
            test_data = test_data.subset(torch.arange(cfg.test_samples))
        return train_data, test_data

    def _accuracy(self, model: nn.Module) -> float:
        return accuracy(model, self._test)

    # -- stages -------------------------------------------------------------------------
    def _model(self, seed: int) -> nn.Module:
        cfg = self.config
        path = self.run_folder.model_path(seed)
        if seed in cfg.checkpoints:
            model = load_checkpoint(cfg.checkpoints[seed], device=self.device).model
            if not self._has("clean", seed):
                self._write(
                    ResultRow(
                        cfg.name,
                        "clean",
                        seed,
                        accuracy=self._accuracy(model),
                        metrics={"checkpoint": cfg.checkpoints[seed]},
                    )
                )
                self._tick(f"seed {seed}: load model", False)
            else:
                self._tick(f"seed {seed}: load model", True)
            return model
        if self._has("clean", seed) and path.exists():
            self._tick(f"seed {seed}: trained model", True)
            return load_checkpoint(path, device=self.device).model
        model, acc, seconds = self._train_model(seed, path)
        self._write(
            ResultRow(cfg.name, "clean", seed, accuracy=acc, seconds=seconds, metrics={"epochs": cfg.train.epochs})
        )
        self._tick(f"seed {seed}: train model", False)
        return model

    def _model_options(self) -> dict[str, Any]:
        return {**DATASETS.get(self.config.dataset).model_options, **dict(self.config.model_options)}

    def _train_model(self, seed: int, path: Path) -> tuple[nn.Module, float, float]:
        """Trains the architecture from the seed and saves it at ``path``."""
        cfg = self.config
        options = self._model_options()
        start = time.perf_counter()
        result = train_from_seed(cfg.model, options, self._train, cfg.train, seed=seed, device=self.device)
        model = result.model.eval()
        seconds = time.perf_counter() - start
        acc = self._accuracy(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            model,
            path,
            architecture=cfg.model,
            arguments=options,
            dataset=cfg.dataset,
            record={"seed": seed, "test_accuracy": acc},
            force=True,
        )
        return model, acc, seconds

    def _scheme_options(self, spec: SchemeSpec, seed: int, budget: int | None = None) -> dict[str, Any]:
        opts = _with_seed("scheme", spec.name, dict(spec.options), seed)
        budget_option = SCHEMES.get(spec.name).budget_option
        if budget is not None:
            if spec.match_params is not None:
                matched = self._get("budget", seed, spec.match_params, None, {"budget": budget})
                budget = max(1, int(matched.metrics["params_changed"])) if matched else budget
            opts[budget_option] = budget
            if "target_accuracy" in _option_fields("scheme", spec.name):
                opts["target_accuracy"] = 0.0  # spend the whole budget: the curve is about size
        elif spec.match_params is not None:
            matched = self._get("lock", seed, spec.match_params)
            if matched is None:
                raise ConfigError(f"{spec.title} matches {spec.match_params}, which has no lock at seed {seed}")
            opts[budget_option] = max(1, int(matched.metrics["params_changed"]))
        return opts

    def _lock(self, spec: SchemeSpec, seed: int, model: nn.Module) -> tuple[nn.Module, Key]:
        cfg = self.config
        ckpt_path, key_path = self.run_folder.lock_paths(spec.title, seed)
        if self._has("lock", seed, spec.title) and ckpt_path.exists() and key_path.exists():
            locked = load_checkpoint(ckpt_path, device=self.device).model
            key = load_key(key_path)
            if key.locked_fingerprint != model_fingerprint(locked):
                raise KeyMismatchError(f"{key_path} does not belong to {ckpt_path}; remove both to redo this lock")
            self._tick(f"seed {seed}: lock {spec.title}", True)
            return locked, key
        options = self._scheme_options(spec, seed)
        scheme = SCHEMES.build(spec.name, options)
        res: LockResult = scheme.lock(model, self._train, generator=torch.Generator().manual_seed(seed))
        restored = scheme.unlock(res.model, res.key)
        locked_acc = self._accuracy(res.model)
        unlocked_acc = self._accuracy(restored)
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        save_locked(
            res.model,
            res.key,
            ckpt_path,
            key_path,
            architecture=cfg.model,
            arguments={**DATASETS.get(cfg.dataset).model_options, **dict(cfg.model_options)},
            dataset=cfg.dataset,
            force=True,
        )
        r = res.report
        metrics = {
            "options": options,
            "params_changed": r.params_changed,
            "params_total": r.params_total,
            "proportion_percent": r.proportion_percent,
            "lock_accuracy_before": r.lock_accuracy_before,
            "lock_accuracy_after": r.lock_accuracy_after,
            "target_accuracy": r.target_accuracy,
            "stopped": r.stopped,
            "rounds": r.rounds,
            "changed_per_tensor": r.changed_per_tensor,
            "unlocked_accuracy": unlocked_acc,
            "bit_exact": state_equal(restored, model),
        }
        self._write(
            ResultRow(cfg.name, "lock", seed, spec.title, accuracy=locked_acc, metrics=metrics, seconds=r.seconds)
        )
        if cfg.stealth:
            self._write(
                ResultRow(cfg.name, "stealth", seed, spec.title, metrics=_stealth_row(model, res.model, res.key))
            )
        if cfg.histograms and seed == cfg.seeds[0]:
            self._write(
                ResultRow(cfg.name, "histogram", seed, spec.title, metrics=_histograms(model, res.model, res.key))
            )
        self._tick(f"seed {seed}: lock {spec.title}", False)
        return res.model, res.key

    def _budgets(self, spec: SchemeSpec, seed: int, model: nn.Module) -> None:
        cfg = self.config
        if not _sweeps_budget(spec):
            return  # its size is not a count of values (e.g. a shuffled share of every tensor)
        for b in cfg.budgets:
            label = f"seed {seed}: {spec.title} budget {b}"
            if self._has("budget", seed, spec.title, None, {"budget": b}):
                self._tick(label, True)
                continue
            options = self._scheme_options(spec, seed, budget=b)
            res = SCHEMES.build(spec.name, options).lock(
                model, self._train, generator=torch.Generator().manual_seed(seed)
            )
            metrics = {
                "options": options,
                "params_changed": res.report.params_changed,
                "lock_accuracy_after": res.report.lock_accuracy_after,
            }
            self._write(
                ResultRow(
                    cfg.name,
                    "budget",
                    seed,
                    spec.title,
                    setting={"budget": b},
                    accuracy=self._accuracy(res.model),
                    metrics=metrics,
                    seconds=res.report.seconds,
                )
            )
            self._tick(label, False)

    def _pending_attacks(
        self, kind: str, seed: int, title: str
    ) -> Iterator[tuple[AttackSpec, dict[str, Any], dict[str, Any]]]:
        """Every attack setting without a ``kind`` row for (seed, title) yet, with its
        options (the run's seed filled in); settings already done are ticked off."""
        for aspec in self.config.attacks:
            for setting in aspec.settings():
                if self._has(kind, seed, title, aspec.name, setting):
                    self._tick(f"seed {seed}: {title} / {aspec.name} {setting}", True)
                    continue
                yield aspec, setting, _with_seed("attack", aspec.name, {**aspec.options, **setting}, seed)

    def _write_attack(
        self,
        kind: str,
        seed: int,
        title: str,
        aspec: AttackSpec,
        setting: dict[str, Any],
        res: AttackResult,
        metrics: dict[str, Any],
    ) -> None:
        """Writes the row of one attack setting on one protected model."""
        self._write(
            ResultRow(
                self.config.name,
                kind,
                seed,
                title,
                aspec.name,
                setting,
                accuracy=self._accuracy(res.model),
                metrics=metrics,
                seconds=res.seconds,
            )
        )
        self._tick(f"seed {seed}: {title} / {aspec.name} {setting}", False)

    def _attacks(self, spec: SchemeSpec, seed: int, locked: nn.Module, key: Key) -> None:
        cfg = self.config
        for aspec, setting, options in self._pending_attacks("attack", seed, spec.title):
            attack_cls = ATTACKS.get(aspec.name)
            shares_scratch = attack_cls.scratch_baseline and options.get("scratch", True)
            have_scratch = self._has("baseline", seed, "scratch", aspec.name, setting)
            if shares_scratch and have_scratch:
                options["scratch"] = False  # the same samples and budget: measured once per seed
            attack = ATTACKS.build(aspec.name, options)
            res = attack.run(
                locked,
                self._train if attack_cls.uses_data else None,
                key=key if attack_cls.uses_key else None,
            )
            metrics: dict[str, Any] = {"options": options, "info": _slim_info(res.info)}
            if attack_cls.reports_suspects:
                precision, recall = detection_scores(res.info["suspects"], key)
                metrics.update(precision=precision, recall=recall, suspects=res.info.get("num_suspects"))
            for bname, bmodel in res.baselines.items():
                self._write(
                    ResultRow(
                        cfg.name,
                        "baseline",
                        seed,
                        bname,
                        aspec.name,
                        setting,
                        accuracy=self._accuracy(bmodel),
                        metrics={"options": options, "made_with": spec.title},
                    )
                )
            self._write_attack("attack", seed, spec.title, aspec, setting, res, metrics)

    # -- watermarks ---------------------------------------------------------------------
    def _null_models(self) -> list[nn.Module]:
        """The independently trained models that calibrate every watermark's threshold
        (seeds 1000, 1001, ...: never a seed of the run)."""
        cfg = self.config
        models = []
        for i in range(cfg.null_models):
            seed = 1000 + i
            path = self.run_folder.null_path(seed)
            label = f"null model {i + 1}/{cfg.null_models}"
            if self._has("null", seed) and path.exists():
                models.append(load_checkpoint(path, device=self.device).model)
                self._tick(label, True)
                continue
            model, acc, seconds = self._train_model(seed, path)
            self._write(ResultRow(cfg.name, "null", seed, accuracy=acc, seconds=seconds))
            models.append(model)
            self._tick(label, False)
        return models

    def _watermark(
        self, spec: WatermarkSpec, seed: int, model: nn.Module, nulls: list[nn.Module]
    ) -> tuple[nn.Module, WatermarkKey, Calibration | None]:
        cfg = self.config
        ckpt_path, key_path = self.run_folder.watermark_paths(spec.title, seed)
        wm_cls = WATERMARKS.get(spec.name)
        arguments = self._model_options()
        done = self._get("watermark", seed, spec.title)
        if done is not None and ckpt_path.exists() and key_path.exists():
            marked = load_checkpoint(ckpt_path, device=self.device).model
            key = load_watermark_key(key_path)
            self._tick(f"seed {seed}: watermark {spec.title}", True)
            return marked, key, _calibration_of(done.metrics, len(key))
        options = _with_option_seed(wm_cls, dict(spec.options), seed)
        res = WATERMARKS.build(spec.name, options).embed(
            model, self._train, generator=torch.Generator().manual_seed(seed)
        )
        marked, key = res.model, res.key
        if wm_cls.extra_class:
            arguments["num_classes"] = key.num_classes
        null_scores = [key.score(m) for m in nulls]
        calibration: Calibration | None
        try:
            calibration = calibrate(null_scores, len(key), cfg.fpr)
        except AdvParamsError:
            calibration = None  # no share of the key reaches the stated rate
        metrics: dict[str, Any] = {
            "options": options,
            "info": res.info,
            "clean_accuracy_before": self._accuracy(model),
            "watermark_accuracy": key.score(marked),
            "null_scores": null_scores,
            "fpr": cfg.fpr,
            "num_keys": len(key),
        }
        metrics.update(_verification_metrics(marked, key, calibration))
        null_decisions = [calibration.verify(round(s * len(key))).decision for s in null_scores] if calibration else []
        metrics["null_false_positives"] = sum(null_decisions)
        if wm_cls.extra_class:
            metrics.update(_authentication_metrics(marked, key, calibration, cfg.users, seed))
        if cfg.lock_with:
            metrics["then_lock"] = self._then_lock(marked, key)
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(marked, ckpt_path, architecture=cfg.model, arguments=arguments, dataset=cfg.dataset, force=True)
        save_watermark_key(key, key_path, force=True)
        self._write(
            ResultRow(
                cfg.name,
                "watermark",
                seed,
                spec.title,
                accuracy=self._accuracy(marked),
                metrics=metrics,
                seconds=float(res.info.get("seconds", 0.0)),
            )
        )
        self._tick(f"seed {seed}: watermark {spec.title}", False)
        return marked, key, calibration

    def _then_lock(self, marked: nn.Module, key: WatermarkKey) -> dict[str, Any]:
        """Locks the watermarked model with ``lock_with``; the watermark must verify on
        the unlocked copy exactly as before."""
        spec = self.config.lock_with
        scheme = SCHEMES.build(str(spec["name"]), dict(spec.get("options") or {}))
        res = scheme.lock(marked, self._train, generator=torch.Generator().manual_seed(0))
        restored = scheme.unlock(res.model, res.key)
        return {
            "scheme": str(spec["name"]),
            "locked_accuracy": self._accuracy(res.model),
            "locked_watermark_accuracy": key.score(res.model),
            "unlocked_watermark_accuracy": key.score(restored),
            "unlocked_bit_exact": state_equal(restored, marked),
        }

    def _watermark_attacks(
        self, spec: WatermarkSpec, seed: int, marked: nn.Module, key: WatermarkKey, calibration: Calibration | None
    ) -> None:
        cfg = self.config
        extra = WATERMARKS.get(spec.name).extra_class
        for aspec, setting, options in self._pending_attacks("wm-attack", seed, spec.title):
            attack_cls = ATTACKS.get(aspec.name)
            if attack_cls.scratch_baseline:
                options["scratch"] = False  # a watermark is not compared with a fresh model
            res = ATTACKS.build(aspec.name, options).run(
                marked, self._train if attack_cls.uses_data else None, key=None
            )
            metrics: dict[str, Any] = {"options": options, "info": _slim_info(res.info)}
            metrics["retention"] = key.score(res.model)
            metrics.update(_verification_metrics(res.model, key, calibration))
            if attack_cls.filters_queries:
                flagged = res.model.flagged
                with torch.no_grad():
                    x = key.inputs().to(model_device(res.model))
                    metrics["key_queries_flagged"] = float(flagged(x).float().mean())
                    metrics["test_queries_flagged"] = float(
                        torch.cat([flagged(xb.to(x.device)) for xb, _ in iter_batches(self._test, 1000)]).float().mean()
                    )
            if extra:
                metrics.update(_authentication_metrics(res.model, key, calibration, cfg.users, seed, forged=False))
            self._write_attack("wm-attack", seed, spec.title, aspec, setting, res, metrics)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> list[ResultRow]:
        """Runs every missing row; returns all rows of the run folder."""
        start = time.perf_counter()
        self.run_folder.prepare(self.config, force=self.force)
        self._rows = {r.key: r for r in self.run_folder.rows()}
        self._writer = self.run_folder.writer()
        self._train, self._test = self._data()
        self._total = self._count_units()
        self._done = 0
        added = len(self._rows)
        nulls = self._null_models() if self.config.watermarks else []
        for seed in self.config.seeds:
            model = self._model(seed)
            for spec in self.config.schemes:
                locked, key = self._lock(spec, seed, model)
                self._budgets(spec, seed, model)
                self._attacks(spec, seed, locked, key)
            for wspec in self.config.watermarks:
                marked, wkey, calibration = self._watermark(wspec, seed, model, nulls)
                self._watermark_attacks(wspec, seed, marked, wkey, calibration)
        added = len(self._rows) - added
        session = ResultRow(
            self.config.name,
            "session",
            -1,
            setting={
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - (time.perf_counter() - start)))
            },
            metrics={"rows_added": added, "environment": environment(self.device)},
            seconds=time.perf_counter() - start,
        )
        self._write(session)
        return list(self._rows.values())


def _with_option_seed(cls: Any, options: dict[str, Any], seed: int) -> dict[str, Any]:
    if "seed" in {f.name for f in fields(cls.Config)}:
        return {**options, "seed": seed}
    return options


def _calibration_of(metrics: dict[str, Any], num_keys: int) -> Calibration | None:
    """The calibration a watermark row recorded (None where no threshold was reachable)."""
    if metrics.get("threshold") is None:
        return None
    return Calibration(
        float(metrics["threshold"]),
        float(metrics["null_rate"]),
        float(metrics["fpr"]),
        num_keys,
        tuple(float(v) for v in metrics["null_scores"]),
    )


def _verification_metrics(model: nn.Module, key: WatermarkKey, calibration: Calibration | None) -> dict[str, Any]:
    if calibration is None:
        return {"threshold": None, "null_rate": None, "p_value": None, "verified": False}
    v = calibration.verify(key.matches(model))
    return {"threshold": v.threshold, "null_rate": calibration.null_rate, "p_value": v.p_value, "verified": v.decision}


def _authentication_metrics(
    model: nn.Module,
    key: WatermarkKey,
    calibration: Calibration | None,
    users: int,
    seed: int,
    *,
    forged: bool = True,
) -> dict[str, Any]:
    """Fingerprint authentication over ``users`` registered users (and, with ``forged``,
    the rejection of forged fingerprints and of a user who is not in the table)."""
    from advparams.watermarks import UserTable, authenticate_user, hide_bits, identify, issue

    table = UserTable()
    for i in range(users):
        table.register(f"user-{i}")
    cal = calibration if calibration is not None else Calibration(1.0, 0.5, 0.5, len(key), (0.0,))
    results = [authenticate_user(model, issue(key, table, u), table, cal) for u in table.users]
    out: dict[str, Any] = {
        "users": users,
        "authentication_success": sum(r.success for r in results) / len(results),
        "users_authenticated": sum(r.success == 1.0 and r.verification.decision for r in results),
    }
    if forged:
        gen = torch.Generator().manual_seed(seed)
        fakes = torch.randint(0, 2, (len(key), table.bits), generator=gen).bool()
        forged_key = key.with_images(hide_bits(key.images, fakes), "forged")
        out["forged_rejected"] = sum(a.user is None for a in identify(forged_key, table)) / len(key)
        outsider = UserTable()
        outsider.register("outsider")
        outsider_key = issue(key, outsider, "outsider")
        out["unknown_rejected"] = sum(a.user is None for a in identify(outsider_key, table)) / len(key)
    return out


def evaluate_protection(
    config: EvalConfig,
    out: str | Path,
    *,
    device: str = "auto",
    force: bool = False,
    progress: Callable[[HarnessProgress], None] | None = None,
) -> list[ResultRow]:
    """Runs an evaluation into ``out`` (resuming it if it exists); returns all its rows.

    See :class:`Harness` and the module docstring.
    """
    return Harness(config, out, device=device, force=force, progress=progress).run()


__all__ = ["Harness", "HarnessProgress", "evaluate_protection"]
