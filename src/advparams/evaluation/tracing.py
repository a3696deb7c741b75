"""The tracing study: traceable keys (``docs/tracing.md``) issued to a roster of users,
every user's copy measured and traced, and leaked copies attacked and traced again.

Units, for the run's model and every ``tracing.models`` architecture (label ``M``) at
every seed ``S``:

* ``trace-model/M/seedS`` (extra architectures only): trains it;
* ``trace-lock/M/seedS``: locks it with the hardened scheme (``dither=23``), issues the
  roster's keys, measures every user's copy (test accuracy, label agreement with the
  original) and traces it white-box (weights) and black-box (answers to the secret
  queries, made here); one ``trace-lock`` row and one ``trace-copy`` row per user;
* ``trace-attack/M/A/SETTING/seedS``: attack ``A`` on the first ``attacked_users``
  copies, each traced both ways (``trace-attack`` rows);
* ``trace-collude/M/K/seedS``: ``coalitions`` disjoint coalitions of ``K`` users average
  their copies (``trace-attack`` rows, attack ``collude``).

Black-box tracing is scored with the first ``n`` queries for every ``n`` of
``tracing.limits`` and with all of them; "queries needed" is the least ``n`` at which the
right user (a colluder, for a coalition) is named and no innocent one. Rows hold user
ids, scores and thresholds, never codewords, positions or the key.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from advparams.attacks import ATTACKS
from advparams.checkpoint import save_checkpoint
from advparams.evaluation.context import SectionStudy, train_unit, with_seed
from advparams.evaluation.engine import Unit
from advparams.evaluation.rows import ResultRow, row_key
from advparams.evaluation.tracing_black import make_prompt_tracer, named, prompt_black_box, query_black_box
from advparams.evaluation.tracing_config import TracingSection
from advparams.files import atomic_write_bytes, read_file
from advparams.keys import unlock
from advparams.keys.io import load_key
from advparams.locked import save_locked
from advparams.registry import config_from_dict
from advparams.schemes.hardened import Hardened
from advparams.tasks import CLASSIFICATION, CausalLM, task_of
from advparams.tasks import answers as task_answers
from advparams.tracing import (
    MarkConfig,
    QueryConfig,
    QueryTracer,
    answer_queries,
    issue_user_key,
    make_queries,
    mark_copy,
    trace_weights,
    user_plan,
)
from advparams.tracing.attacks import COPY_ATTACKS, CopyContext, average_copies
from advparams.training import train_from_seed

STATE_LIMIT = 4 << 30
"""Largest tracer state read back (the gradients at 4,096 queries of 4,096 marks: 64 MiB)."""


def user_ids(count: int) -> list[str]:
    """The roster of a study: ``user000``, ``user001``, ..."""
    return [f"user{i:03d}" for i in range(count)]


def tracing_folder(out: Path, label: str, seed: int) -> Path:
    """Where a model's tracing artefacts live in the run folder."""
    return out / "tracing" / f"{label}-seed{seed}"


class TracingStudy(SectionStudy[TracingSection]):
    """Traceable keys on the config's models (see the module docstring)."""

    name = "tracing"
    section_key = "tracing"

    def labels(self) -> list[str]:
        """The traced models' labels: the run's model first."""
        return [self.ctx.config.model] + [m.title for m in self.section.models]

    def units(self) -> list[Unit]:
        cfg = self.ctx.config
        if cfg.tracing is None:
            return []
        out = []
        for label in self.labels():
            for seed in cfg.seeds:
                extra = self.section.model(label) is not None
                train = f"trace-model/{label}/seed{seed}" if extra else train_unit(seed)
                if extra:
                    out.append(Unit(train, self.name, {"label": label, "seed": seed, "step": "train"}))
                lock = f"trace-lock/{label}/seed{seed}"
                out.append(Unit(lock, self.name, {"label": label, "seed": seed, "step": "lock"}, (train,)))
                for a, spec in enumerate(self.section.attacks):
                    for setting in spec.settings():
                        sid = json.dumps(setting, sort_keys=True, separators=(",", ":"))
                        out.append(
                            Unit(
                                f"trace-attack/{label}/{spec.name}/{sid}/seed{seed}",
                                self.name,
                                {"label": label, "seed": seed, "step": "attack", "attack": a, "setting": setting},
                                (lock,),
                            )
                        )
                for size in self.section.colluders:
                    out.append(
                        Unit(
                            f"trace-collude/{label}/{size}/seed{seed}",
                            self.name,
                            {"label": label, "seed": seed, "step": "collude", "size": size},
                            (lock,),
                        )
                    )
        return out

    def done_by_rows(self, unit: Unit, keys: set[tuple[Any, ...]]) -> bool:
        p = unit.params
        if p["step"] == "lock":
            return row_key("trace-lock", int(p["seed"]), str(p["label"])) in keys
        return False

    def run(self, unit: Unit) -> list[ResultRow]:
        p = unit.params
        label, seed = str(p["label"]), int(p["seed"])
        if p["step"] == "train":
            self._train(label, seed)
            return []
        if p["step"] == "lock":
            return self._lock(label, seed)
        if p["step"] == "attack":
            spec = self.section.attacks[int(p["attack"])]
            return self._attack(
                label, seed, spec.name, {**dict(spec.options), **dict(p["setting"])}, dict(p["setting"])
            )
        return self._collude(label, seed, int(p["size"]))

    # -- artefacts ---------------------------------------------------------------------

    def _model_path(self, label: str, seed: int) -> Path:
        if self.section.model(label) is None:
            return Path(self.ctx.config.checkpoints.get(seed) or self.ctx.run.model_path(seed))
        return self.ctx.out / "tracing" / "models" / f"{label}-seed{seed}"

    def _arguments(self, label: str) -> dict[str, Any]:
        extra = self.section.model(label)
        base = self.ctx.model_arguments()
        if extra is None:
            return base
        from advparams.data import DATASETS

        return {**DATASETS.get(self.ctx.config.dataset).model_options, **dict(extra.options)}

    def _train(self, label: str, seed: int) -> None:
        extra = self.section.model(label)
        assert extra is not None
        ctx = self.ctx
        train_cfg = dataclasses.replace(ctx.config.train, **dict(extra.train))
        data = ctx.train
        if extra.train_samples is not None and extra.train_samples < len(data):
            data = data.subset(
                torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[: extra.train_samples]
            )
        result = train_from_seed(extra.model, self._arguments(label), data, train_cfg, seed=seed, device=ctx.device)
        model = result.model.eval()
        path = self._model_path(label, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(
            model,
            path,
            architecture=extra.model,
            arguments=self._arguments(label),
            dataset=ctx.config.dataset,
            record={"seed": seed, "test_accuracy": ctx.accuracy(model)},
            force=True,
        )

    def _mark(self) -> MarkConfig:
        return config_from_dict(MarkConfig, dict(self.section.mark), what="tracing.mark")

    def _query_config(self) -> QueryConfig:
        return config_from_dict(QueryConfig, dict(self.section.queries), what="tracing.queries")

    def _setup(self, label: str, seed: int) -> tuple[nn.Module, nn.Module, Any, Any, QueryTracer | None]:
        """(original, locked, owner key, plan, tracer) of a locked model, from the run folder
        (no tracer without black-box tracing)."""
        folder = tracing_folder(self.ctx.out, label, seed)
        locked = self.ctx.load(folder / "locked")
        key = load_key(folder / "owner.key")
        original = unlock(locked, key)
        plan = user_plan(key, original, self._mark())
        tracer = None
        if self.section.black_box:
            data = read_file(folder / "tracer.safetensors", what="tracing state", limit=STATE_LIMIT)
            tracer = QueryTracer.from_state(st_load(data), plan, user_ids(self.section.users), self._query_config())
        return original, locked, key, plan, tracer

    def _answers(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Top-1 answers per target of the data's task (a language model: per position)."""
        task = task_of(self.ctx.test)
        return answer_queries(model, x) if task is CLASSIFICATION else task_answers(model, x, task)

    def _reference(self, original: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The test inputs, their targets by the data's task, and the original's answers."""
        x, y = self.ctx.test.tensors()
        return x, task_of(self.ctx.test).targets(x, y), self._answers(original, x)

    # -- units -------------------------------------------------------------------------

    def _lock(self, label: str, seed: int) -> list[ResultRow]:
        ctx, section = self.ctx, self.section
        original = ctx.load(self._model_path(label, seed))
        mark = self._mark()
        users = user_ids(section.users)
        start = time.perf_counter()
        options = with_seed(Hardened, {**dict(section.lock), "dither": 23}, seed)
        locked = Hardened(**options).lock(original, ctx.train)
        lock_seconds = time.perf_counter() - start
        folder = tracing_folder(ctx.out, label, seed)
        folder.mkdir(parents=True, exist_ok=True)
        arch = self.section.model(label).model if self.section.model(label) else ctx.config.model  # type: ignore[union-attr]
        # the key first, then the locked model beside it (advparams.locked.save_locked)
        save_locked(locked.model, locked.key, folder / "locked", folder / "owner.key", architecture=arch,
                    arguments=self._arguments(label), dataset=ctx.config.dataset, force=True)  # fmt: skip
        plan = user_plan(locked.key, original, mark)
        # The copy a user's key unlocks is the one the plan writes, bit for bit.
        issued = unlock(locked.model, issue_user_key(locked.model, locked.key, users[0], mark))
        reproduced = _same_weights(issued, mark_copy(original, plan, users[0]))
        x, y, reference = self._reference(original)
        tracer, query_seconds = self._make_tracer(original, plan, folder, seed) if section.black_box else (None, 0.0)
        rows = []
        for user in users:
            copy_ = mark_copy(original, plan, user)
            rows.append(self._case_row(label, seed, "trace-copy", None, {"user": user}, copy_, {user}, original,
                                       plan, tracer, x, y, reference))  # fmt: skip
        rows.insert(
            0,
            ctx.row(
                "trace-lock",
                seed,
                label,
                accuracy=float((reference == y).double().mean()),
                seconds=lock_seconds,
                metrics={
                    "locked_accuracy": ctx.accuracy(locked.model),
                    "copy_reproduced": reproduced,
                    "users": len(users),
                    "positions": mark.positions,
                    "strength": mark.strength,
                    "queries": len(tracer.queries) if tracer is not None else 0,
                    "query_seconds": query_seconds,
                    "rate": mark.false_accusation,
                    "draws": locked.key.info.get("draws"),
                },
            ),
        )
        return rows

    def _make_tracer(self, original: nn.Module, plan: Any, folder: Path, seed: int) -> tuple[QueryTracer, float]:
        """The black-box tracer of a locked model (its state saved in ``folder``) and the
        seconds its queries took."""
        start = time.perf_counter()
        pool = self.ctx.train.tensors()[0][: self.section.query_pool]
        qcfg, users = self._query_config(), user_ids(self.section.users)
        if self._language():
            section = self.section
            tracer = make_prompt_tracer(original, plan, pool, users, qcfg, section.prompt_length, section.prompt_stride)
        else:
            queries = make_queries(original, plan, pool, qcfg, generator=torch.Generator().manual_seed(seed))
            tracer = QueryTracer(original, plan, queries, users, qcfg)
        state = tracer.state()
        state["gradients"] = state["gradients"].float()  # half the file; every unit reads the same
        seconds = time.perf_counter() - start
        atomic_write_bytes(folder / "tracer.safetensors", st_save(state), force=True)
        return QueryTracer.from_state(state, plan, users, qcfg), seconds

    def _case_row(
        self,
        label: str,
        seed: int,
        kind: str,
        attack: str | None,
        setting: dict[str, Any],
        suspect: nn.Module,
        guilty: set[str],
        original: nn.Module,
        plan: Any,
        tracer: QueryTracer | None,
        x: torch.Tensor,
        y: torch.Tensor,
        reference: torch.Tensor,
        extra: dict[str, Any] | None = None,
    ) -> ResultRow:
        rate = self._mark().false_accusation
        preds = self._answers(suspect, x)
        start = time.perf_counter()
        white = trace_weights(suspect, original, plan, user_ids(self.section.users), rate)
        metrics = {
            "agreement": float((preds == reference).double().mean()),
            "accuracy_original": float((reference == y).double().mean()),
            "white": named(white, guilty),
            "guilty": len(guilty),
            **(self._black_box(suspect, tracer, guilty, rate) if tracer is not None else {}),
            **(extra or {}),
        }
        return self.ctx.row(
            kind,
            seed,
            label,
            attack=attack,
            setting=setting,
            accuracy=float((preds == y).double().mean()),
            metrics=metrics,
            seconds=time.perf_counter() - start,
        )

    def _black_box(self, suspect: nn.Module, tracer: QueryTracer, guilty: set[str], rate: float) -> dict[str, Any]:
        """The black-box metrics of a suspect (:mod:`advparams.evaluation.tracing_black`)."""
        score = prompt_black_box if self._language() else query_black_box
        return score(suspect, tracer, guilty, rate, self.section.limits)

    def _language(self) -> bool:
        return isinstance(task_of(self.ctx.test), CausalLM)

    def _attack(
        self, label: str, seed: int, name: str, options: dict[str, Any], setting: dict[str, Any]
    ) -> list[ResultRow]:
        section = self.section
        original, locked, _, plan, tracer = self._setup(label, seed)
        x, y, reference = self._reference(original)
        rows = []
        for i, user in enumerate(user_ids(section.users)[: section.attacked_users]):
            copy_ = mark_copy(original, plan, user)
            start = time.perf_counter()
            suspect, extra = self._attacked(copy_, locked, name, options, seed * 1000 + i)
            extra["attack_seconds"] = time.perf_counter() - start
            rows.append(self._case_row(label, seed, "trace-attack", name, {**setting, "user": user}, suspect, {user},
                                       original, plan, tracer, x, y, reference, extra))  # fmt: skip
        return rows

    def _attacked(
        self, copy_: nn.Module, locked: nn.Module, name: str, options: dict[str, Any], seed: int
    ) -> tuple[nn.Module, dict[str, Any]]:
        """The attacked copy and the attack's counts: one of tracing's own attacks, or a lock
        attack that declares ``attacks_copies`` (without its scratch model)."""
        if name in COPY_ATTACKS:
            context = CopyContext(locked, self.ctx.train, self._mark().strength)
            attack: Any = COPY_ATTACKS.build(name, options)
            return attack.attack(copy_, context, seed)
        cls = ATTACKS.get(name)
        opts = {**options, **({"scratch": False} if cls.scratch_baseline else {})}
        return ATTACKS.build(name, with_seed(cls, opts, seed)).run(copy_, self.ctx.train).model, {}

    def _collude(self, label: str, seed: int, size: int) -> list[ResultRow]:
        section = self.section
        original, _, _, plan, tracer = self._setup(label, seed)
        x, y, reference = self._reference(original)
        users = user_ids(section.users)
        first = section.attacked_users + section.coalitions * sum(c for c in section.colluders if c < size)
        rows = []
        for c in range(section.coalitions):
            members = users[first + c * size : first + (c + 1) * size]
            suspect = average_copies([mark_copy(original, plan, u) for u in members])
            rows.append(self._case_row(label, seed, "trace-attack", "collude", {"colluders": size, "coalition": c},
                                       suspect, set(members), original, plan, tracer, x, y, reference,
                                       {"members": members}))  # fmt: skip
        return rows


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


__all__ = ["TracingStudy", "named", "tracing_folder", "user_ids"]
