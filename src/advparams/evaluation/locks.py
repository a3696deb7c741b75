"""The locks study: every scheme on every seed's model, its budget sweep, and every attack.

Units (``S`` the seed, ``T`` the scheme's label):

* ``lock/T/seedS`` after ``train/seedS`` (and the lock it matches in size, for
  ``match_params``): a ``lock`` row, a ``stealth`` row and, on the first seed, a
  ``histogram`` row; the locked model and its key are saved in the run folder;
* ``budget/T/B/seedS`` after ``train/seedS``: a ``budget`` row per budget ``B``, for the
  schemes whose size is a count of values (:attr:`Scheme.budget_option`);
* ``attack/T/A/SETTING/seedS`` after ``lock/T/seedS``: an ``attack`` row, and the
  baselines the attack made (``baseline`` rows). An attack with a scratch baseline
  (:attr:`Attack.scratch_baseline`) trains it beside the first scheme only: it depends on
  the samples and the budget, not on the locked model, so it is measured once per seed
  and setting.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import torch
from torch import nn

from advparams.attacks import ATTACKS
from advparams.errors import ConfigError, KeyMismatchError
from advparams.evaluation.config import SchemeSpec
from advparams.evaluation.context import RunStudy, slim_info, train_unit, with_seed
from advparams.evaluation.engine import Unit
from advparams.evaluation.rows import ResultRow, row_key
from advparams.fingerprint import model_fingerprint, state_equal
from advparams.keys import Key, load_key
from advparams.locked import save_locked
from advparams.metrics import detection_scores, stealth_summary
from advparams.registry import config_to_dict
from advparams.schemes import SCHEMES


def lock_unit(scheme: str, seed: int) -> str:
    """The id of the unit that locks the model of ``seed`` with the scheme labelled ``scheme``."""
    return f"lock/{scheme}/seed{seed}"


def _setting_id(setting: dict[str, Any]) -> str:
    return json.dumps(setting, sort_keys=True, separators=(",", ":"))


def histograms(original: nn.Module, locked: nn.Module, key: Key, bins: int = 50) -> dict[str, Any]:
    """Per touched tensor: binned original and locked values, and the bins the changed
    values fall in. Binned only: no positions and no original values."""
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


def stealth_row(original: nn.Module, locked: nn.Module, key: Key) -> dict[str, Any]:
    """The stealth summary without key material: aggregate statistics and per-tensor KS
    tests only. Per-value z-scores are left out: with the locked model they single out the
    changed values, which is the key."""
    summary = stealth_summary(original, locked, key)
    del summary["per_value"]
    return summary


class LocksStudy(RunStudy):
    """Locks, budget sweeps and attacks of the config's schemes."""

    name = "locks"

    # -- units ------------------------------------------------------------------------------
    def units(self) -> list[Unit]:
        cfg, out = self.ctx.config, []
        for seed in cfg.seeds:
            for i, spec in enumerate(cfg.schemes):
                deps = [train_unit(seed)] + ([lock_unit(spec.match_params, seed)] if spec.match_params else [])
                lock = Unit(lock_unit(spec.title, seed), self.name, {"seed": seed, "scheme": spec.title}, tuple(deps))
                out.append(lock)
                if SCHEMES.get(spec.name).budget_option is not None:
                    for b in cfg.budgets:
                        match = [f"budget/{spec.match_params}/{b}/seed{seed}"] if spec.match_params else []
                        params = {"seed": seed, "scheme": spec.title, "budget": b}
                        out.append(
                            Unit(f"budget/{spec.title}/{b}/seed{seed}", self.name, params, (train_unit(seed), *match))
                        )
                for a, aspec in enumerate(cfg.attacks):
                    for setting in aspec.settings():
                        params = {"seed": seed, "scheme": spec.title, "attack": a, "setting": setting, "first": i == 0}
                        uid = f"attack/{spec.title}/{aspec.name}/{_setting_id(setting)}/seed{seed}"
                        out.append(Unit(uid, self.name, params, (lock.id,)))
        return out

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        p, kind = unit.params, unit.id.split("/", 1)[0]
        seed, title = int(p["seed"]), str(p["scheme"])
        if kind == "lock":  # its last row is there, and its artefacts
            cfg = self.ctx.config
            last = "histogram" if cfg.histograms and seed == cfg.seeds[0] else "stealth" if cfg.stealth else "lock"
            return row_key(last, seed, title) in keys and all(q.exists() for q in self.ctx.run.lock_paths(title, seed))
        if kind == "budget":
            return row_key("budget", seed, title, None, {"budget": p["budget"]}) in keys
        name = self.ctx.config.attacks[int(p["attack"])].name
        return row_key("attack", seed, title, name, dict(p["setting"])) in keys

    def run(self, unit: Unit) -> list[ResultRow]:
        kind = unit.id.split("/", 1)[0]
        spec = self._spec(str(unit.params["scheme"]))
        if kind == "lock":
            return self._lock(spec, int(unit.params["seed"]))
        if kind == "budget":
            return self._budget(spec, int(unit.params["seed"]), int(unit.params["budget"]))
        return self._attack(spec, unit.params)

    # -- work ---------------------------------------------------------------------------------
    def _spec(self, title: str) -> SchemeSpec:
        for spec in self.ctx.config.schemes:
            if spec.title == title:
                return spec
        raise ConfigError(f"the config has no scheme labelled {title!r}")

    def _options(self, spec: SchemeSpec, seed: int, budget: int | None = None) -> dict[str, Any]:
        cls = SCHEMES.get(spec.name)
        opts = with_seed(cls, dict(spec.options), seed)
        if spec.match_params is not None:  # as many values as the matched scheme changed
            rows = {r.key: r for r in self.ctx.run.rows()}
            if budget is not None:
                matched = rows.get(row_key("budget", seed, spec.match_params, None, {"budget": budget}))
                opts[cls.budget_option] = max(1, int(matched.metrics["params_changed"])) if matched else budget
            else:
                matched = rows.get(row_key("lock", seed, spec.match_params))
                if matched is None:
                    raise ConfigError(f"{spec.title} matches {spec.match_params}, which has no lock at seed {seed}")
                opts[cls.budget_option] = max(1, int(matched.metrics["params_changed"]))
        elif budget is not None:
            opts[cls.budget_option] = budget
        if budget is not None and "target_accuracy" in {f.name for f in fields(cls.Config)}:
            opts["target_accuracy"] = 0.0  # spend the whole budget: the curve is about size
        return opts

    def _lock(self, spec: SchemeSpec, seed: int) -> list[ResultRow]:
        ctx, cfg = self.ctx, self.ctx.config
        model = ctx.model_of(seed)
        options = self._options(spec, seed)
        scheme = SCHEMES.build(spec.name, options)
        res = scheme.lock(model, ctx.train, generator=torch.Generator().manual_seed(seed))
        restored = scheme.unlock(res.model, res.key)
        unlocked_acc = ctx.accuracy(restored)
        ckpt_path, key_path = ctx.run.lock_paths(spec.title, seed)
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        save_locked(
            res.model,
            res.key,
            ckpt_path,
            key_path,
            architecture=cfg.model,
            arguments=ctx.model_arguments(),
            dataset=cfg.dataset,
            force=True,
        )
        r = res.report
        metrics = {
            "options": options,
            # every setting the lock ran with, defaults included: a later default change
            # cannot make the row ambiguous (which search, how many draws)
            "config": config_to_dict(scheme.config),
            "params_changed": r.params_changed,
            "params_total": r.params_total,
            "proportion_percent": r.proportion_percent,
            "lock_accuracy_before": r.lock_accuracy_before,
            "lock_accuracy_after": r.lock_accuracy_after,
            "target_accuracy": r.target_accuracy,
            "stopped": r.stopped,
            "rounds": r.rounds,
            "target_met": r.target_met,
            "forward_passes": r.forward_passes,
            "backward_passes": r.backward_passes,
            "holdout_accuracy_after": r.holdout_accuracy_after,
            "changed_per_tensor": r.changed_per_tensor,
            "unlocked_accuracy": unlocked_acc,
            "bit_exact": state_equal(restored, model),
            # The key's size, not its content: how many values it lists, whether it holds a
            # shuffle secret, and the file's bytes (docs quote them; no position or value here).
            "key_values": sum(int(e.indices.numel()) for e in res.key.entries),
            "key_secret": bool(res.key.shuffles),
            "key_bytes": key_path.stat().st_size,
            **ctx.quality(res.model),
            **ctx.bar(),
        }
        rows = [ctx.row("lock", seed, spec.title, accuracy=ctx.accuracy(res.model), metrics=metrics, seconds=r.seconds)]
        if cfg.stealth:
            rows.append(ctx.row("stealth", seed, spec.title, metrics=stealth_row(model, res.model, res.key)))
        if cfg.histograms and seed == cfg.seeds[0]:
            rows.append(ctx.row("histogram", seed, spec.title, metrics=histograms(model, res.model, res.key)))
        return rows

    def _budget(self, spec: SchemeSpec, seed: int, budget: int) -> list[ResultRow]:
        ctx = self.ctx
        options = self._options(spec, seed, budget=budget)
        res = SCHEMES.build(spec.name, options).lock(
            ctx.model_of(seed), ctx.train, generator=torch.Generator().manual_seed(seed)
        )
        metrics = {
            "options": options,
            "params_changed": res.report.params_changed,
            "lock_accuracy_after": res.report.lock_accuracy_after,
        }
        acc = ctx.accuracy(res.model)
        setting = {"budget": budget}
        return [
            ctx.row(
                "budget", seed, spec.title, setting=setting, accuracy=acc, metrics=metrics, seconds=res.report.seconds
            )
        ]

    def _attack(self, spec: SchemeSpec, p: Any) -> list[ResultRow]:
        ctx, seed, setting = self.ctx, int(p["seed"]), dict(p["setting"])
        aspec = ctx.config.attacks[int(p["attack"])]
        ckpt_path, key_path = ctx.run.lock_paths(spec.title, seed)
        locked, key = ctx.load(ckpt_path), load_key(key_path)
        if key.locked_fingerprint != model_fingerprint(locked):
            raise KeyMismatchError(f"{key_path} does not belong to {ckpt_path}; remove both to redo this lock")
        attack_cls = ATTACKS.get(aspec.name)
        options = with_seed(attack_cls, {**aspec.options, **setting}, seed)
        if attack_cls.scratch_baseline and options.get("scratch", True) and not p["first"]:
            options["scratch"] = False  # the same samples and budget: measured beside the first scheme
        res = ATTACKS.build(aspec.name, options).run(
            locked, ctx.train if attack_cls.uses_data else None, key=key if attack_cls.uses_key else None
        )
        metrics: dict[str, Any] = {"options": options, "info": slim_info(res.info)}
        if attack_cls.reports_suspects:
            precision, recall = detection_scores(res.info["suspects"], key)
            metrics.update(precision=precision, recall=recall, suspects=res.info.get("num_suspects"))
        rows = [
            ResultRow(
                ctx.config.name,
                "baseline",
                seed,
                bname,
                aspec.name,
                setting,
                accuracy=ctx.accuracy(bmodel),
                metrics={"options": options, "made_with": spec.title, **ctx.quality(bmodel)},
            )
            for bname, bmodel in res.baselines.items()
        ]
        acc = ctx.accuracy(res.model)
        metrics.update(ctx.quality(res.model))
        rows.append(
            ResultRow(
                ctx.config.name, "attack", seed, spec.title, aspec.name, setting, acc, metrics, seconds=res.seconds
            )
        )
        return rows


__all__ = ["LocksStudy", "histograms", "lock_unit", "stealth_row"]
