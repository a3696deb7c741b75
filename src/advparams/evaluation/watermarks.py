"""The watermarks study: every watermark embedded in every seed's model, then every attack.

Units (``S`` the seed, ``W`` the watermark's label):

* ``watermark/W/seedS`` after ``train/seedS`` and every ``null/seed...``: embeds, calibrates
  the threshold on the null models at the config's false-positive rate, verifies,
  authenticates users (additional-class watermarks) and, with ``lock_with``, locks the
  watermarked model; a ``watermark`` row, and the model and key samples in the run folder;
* ``wm-attack/W/A/SETTING/seedS`` after ``watermark/W/seedS``: the watermark's retention
  and verification under the attack, with the calibration the watermark row recorded.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from advparams.attacks import ATTACKS
from advparams.checkpoint import save_checkpoint
from advparams.data.base import iter_batches
from advparams.devices import model_device
from advparams.errors import AdvParamsError, ConfigError
from advparams.evaluation.config import WatermarkSpec
from advparams.evaluation.context import RunStudy, null_seeds, null_unit, slim_info, train_unit, with_seed
from advparams.evaluation.engine import Unit
from advparams.evaluation.rows import ResultRow, row_key
from advparams.fingerprint import state_equal
from advparams.schemes import SCHEMES
from advparams.watermarks import (
    WATERMARKS,
    Calibration,
    UserTable,
    WatermarkKey,
    authenticate_user,
    calibrate,
    hide_bits,
    identify,
    issue,
)
from advparams.watermarks.keyfile import load_watermark_key, save_watermark_key


def calibration_of(metrics: dict[str, Any], num_keys: int) -> Calibration | None:
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


def verification_metrics(model: nn.Module, key: WatermarkKey, calibration: Calibration | None) -> dict[str, Any]:
    """The verification of ``model`` against ``key`` at the calibrated threshold."""
    if calibration is None:
        return {"threshold": None, "null_rate": None, "p_value": None, "verified": False}
    v = calibration.verify(key.matches(model))
    return {"threshold": v.threshold, "null_rate": calibration.null_rate, "p_value": v.p_value, "verified": v.decision}


def authentication_metrics(
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


class WatermarksStudy(RunStudy):
    """Embedding, calibration, verification and attacks of the config's watermarks."""

    name = "watermarks"

    def units(self) -> list[Unit]:
        cfg, out = self.ctx.config, []
        nulls = tuple(null_unit(s) for s in null_seeds(cfg))
        for seed in cfg.seeds:
            for spec in cfg.watermarks:
                mark = Unit(
                    f"watermark/{spec.title}/seed{seed}",
                    self.name,
                    {"seed": seed, "watermark": spec.title},
                    (train_unit(seed), *nulls),
                )
                out.append(mark)
                for a, aspec in enumerate(cfg.attacks):
                    for setting in aspec.settings():
                        params = {"seed": seed, "watermark": spec.title, "attack": a, "setting": setting}
                        sid = json.dumps(setting, sort_keys=True, separators=(",", ":"))
                        out.append(
                            Unit(f"wm-attack/{spec.title}/{aspec.name}/{sid}/seed{seed}", self.name, params, (mark.id,))
                        )
        return out

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        p = unit.params
        seed, title = int(p["seed"]), str(p["watermark"])
        if "attack" not in p:
            paths = self.ctx.run.watermark_paths(title, seed)
            return row_key("watermark", seed, title) in keys and all(q.exists() for q in paths)
        name = self.ctx.config.attacks[int(p["attack"])].name
        return row_key("wm-attack", seed, title, name, dict(p["setting"])) in keys

    def run(self, unit: Unit) -> list[ResultRow]:
        spec = self._spec(str(unit.params["watermark"]))
        if "attack" in unit.params:
            return self._attack(spec, unit.params)
        return self._embed(spec, int(unit.params["seed"]))

    def _spec(self, title: str) -> WatermarkSpec:
        for spec in self.ctx.config.watermarks:
            if spec.title == title:
                return spec
        raise ConfigError(f"the config has no watermark labelled {title!r}")

    def _embed(self, spec: WatermarkSpec, seed: int) -> list[ResultRow]:
        ctx, cfg = self.ctx, self.ctx.config
        model = ctx.model_of(seed)
        nulls = [ctx.load(ctx.run.null_path(s)) for s in null_seeds(cfg)]
        wm_cls = WATERMARKS.get(spec.name)
        arguments = ctx.model_arguments()
        options = with_seed(wm_cls, dict(spec.options), seed)
        res = WATERMARKS.build(spec.name, options).embed(
            model, ctx.train, generator=torch.Generator().manual_seed(seed)
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
            "clean_accuracy_before": ctx.accuracy(model),
            "watermark_accuracy": key.score(marked),
            "null_scores": null_scores,
            "fpr": cfg.fpr,
            "num_keys": len(key),
        }
        metrics.update(verification_metrics(marked, key, calibration))
        null_decisions = [calibration.verify(round(s * len(key))).decision for s in null_scores] if calibration else []
        metrics["null_false_positives"] = sum(null_decisions)
        if wm_cls.extra_class:
            metrics.update(authentication_metrics(marked, key, calibration, cfg.users, seed))
        if cfg.lock_with:
            metrics["then_lock"] = self._then_lock(marked, key)
        ckpt_path, key_path = ctx.run.watermark_paths(spec.title, seed)
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(marked, ckpt_path, architecture=cfg.model, arguments=arguments, dataset=cfg.dataset, force=True)
        save_watermark_key(key, key_path, force=True)
        seconds = float(res.info.get("seconds", 0.0))
        return [ctx.row("watermark", seed, spec.title, accuracy=ctx.accuracy(marked), metrics=metrics, seconds=seconds)]

    def _then_lock(self, marked: nn.Module, key: WatermarkKey) -> dict[str, Any]:
        """Locks the watermarked model with ``lock_with``; the watermark must verify on
        the unlocked copy exactly as before."""
        spec = self.ctx.config.lock_with
        scheme = SCHEMES.build(str(spec["name"]), dict(spec.get("options") or {}))
        res = scheme.lock(marked, self.ctx.train, generator=torch.Generator().manual_seed(0))
        restored = scheme.unlock(res.model, res.key)
        return {
            "scheme": str(spec["name"]),
            "locked_accuracy": self.ctx.accuracy(res.model),
            "locked_watermark_accuracy": key.score(res.model),
            "unlocked_watermark_accuracy": key.score(restored),
            "unlocked_bit_exact": state_equal(restored, marked),
        }

    def _attack(self, spec: WatermarkSpec, p: Any) -> list[ResultRow]:
        ctx, seed, setting = self.ctx, int(p["seed"]), dict(p["setting"])
        aspec = ctx.config.attacks[int(p["attack"])]
        ckpt_path, key_path = ctx.run.watermark_paths(spec.title, seed)
        marked, key = ctx.load(ckpt_path), load_watermark_key(key_path)
        done = {r.key: r for r in ctx.run.rows()}.get(row_key("watermark", seed, spec.title))
        if done is None:
            raise AdvParamsError(f"{ctx.out} has no watermark row for {spec.title} at seed {seed}")
        calibration = calibration_of(done.metrics, len(key))
        attack_cls = ATTACKS.get(aspec.name)
        options = with_seed(attack_cls, {**aspec.options, **setting}, seed)
        if attack_cls.scratch_baseline:
            options["scratch"] = False  # a watermark is not compared with a fresh model
        res = ATTACKS.build(aspec.name, options).run(marked, ctx.train if attack_cls.uses_data else None, key=None)
        metrics: dict[str, Any] = {"options": options, "info": slim_info(res.info)}
        metrics["retention"] = key.score(res.model)
        metrics.update(verification_metrics(res.model, key, calibration))
        if attack_cls.filters_queries:
            flagged = res.model.flagged
            with torch.no_grad():
                x = key.inputs().to(model_device(res.model))
                metrics["key_queries_flagged"] = float(flagged(x).float().mean())
                metrics["test_queries_flagged"] = float(
                    torch.cat([flagged(xb.to(x.device)) for xb, _ in iter_batches(ctx.test, 1000)]).float().mean()
                )
        if WATERMARKS.get(spec.name).extra_class:
            metrics.update(authentication_metrics(res.model, key, calibration, ctx.config.users, seed, forged=False))
        acc = ctx.accuracy(res.model)
        return [
            ResultRow(ctx.config.name, "wm-attack", seed, spec.title, aspec.name, setting, acc, metrics, res.seconds)
        ]


__all__ = ["WatermarksStudy", "authentication_metrics", "calibration_of", "verification_metrics"]
