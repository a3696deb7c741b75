"""The shipped language-model config runs end to end in the evaluation engine with its sizes
cut (a tiny GPT-2 on 600 windows of python-stdlib): train, the config's locks and
attacks, traced copies, and a report that reads the task (perplexity against the unigram
bar; black-box tracing from log-probabilities and from text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.reports import write_report

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "language-model-python-stdlib.yaml"


def shrunk() -> dict[str, Any]:
    raw = yaml.safe_load(CONFIG.read_text())
    raw.update(
        seeds=[0],
        train={"epochs": 2, "batch_size": 16, "lr": 0.003},
        train_samples=600,
        test_samples=300,
        model_options={"hidden_size": 32, "layers": 1, "heads": 2},
    )
    small = {"num_samples": 100, "check_samples": 200, "batch_size": 100}
    for s in raw["schemes"]:
        s["options"] = {**s["options"], **small}
    for a in raw["attacks"]:
        a["cases"] = [{**c, "epochs": 1} for c in a["cases"]]
    raw["tracing"].update(
        users=10, queries={"queries": 64}, limits=[16, 32, 64], query_pool=400, prompt_length=64, prompt_stride=None,
        coalitions=1, colluders=[2],
        attacked_users=1, lock={**raw["tracing"]["lock"], **small},
    )  # fmt: skip
    return raw


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, list[Any]]:
    cfg = config_from_mapping(shrunk())
    out = tmp_path_factory.mktemp("lm-run")
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


def test_locks_and_attacks_are_measured_in_perplexity(run) -> None:  # type: ignore[no-untyped-def]
    cfg, _, rows = run
    assert cfg.dataset == "python-stdlib" and cfg.model == "gpt2"
    (clean,) = [r for r in rows if r.kind == "clean"]
    locks = {r.scheme: r for r in rows if r.kind == "lock"}
    assert set(locks) == {"advparams", "advparams-greedy", "hardened"}
    bar = locks["hardened"].metrics["perplexity_bar"]
    assert clean.metrics["perplexity"] < bar  # the tiny model learned more than byte frequencies
    for r in locks.values():
        assert r.metrics["bit_exact"] and r.metrics["target_met"]
        assert r.metrics["perplexity"] >= r.metrics["perplexity_bar"] == bar
        assert r.metrics["unlocked_accuracy"] == clean.accuracy
    attacks = [r for r in rows if r.kind == "attack"]
    assert {(r.scheme, r.setting["data_fraction"]) for r in attacks} == {(s, f) for s in locks for f in (0.01, 0.1)}
    assert all(r.metrics["perplexity"] > 1 for r in attacks)
    assert all("perplexity" in r.metrics for r in rows if r.kind == "baseline")


def test_copies_are_traced_from_weights_and_log_probabilities(run) -> None:  # type: ignore[no-untyped-def]
    _, _, rows = run
    copies = [r for r in rows if r.kind == "trace-copy"]
    assert len(copies) == 10
    for r in copies:
        assert r.metrics["white"]["named_right"] and r.metrics["black"]["named_right"]
        assert r.metrics["agreement"] > 0.95  # next-token agreement, per position (a tiny model: near ties)
    every = [r for r in rows if r.kind in ("trace-copy", "trace-attack")]
    assert any(r.attack == "collude" for r in every)
    for r in every:
        assert r.metrics["white"]["innocents"] == 0 and r.metrics["black"]["innocents"] == 0
        assert r.metrics["black_text"]["innocents"] == 0
        assert all(v["innocents"] == 0 for v in r.metrics["black_text_by_queries"].values())


def test_the_report_reads_the_task(run) -> None:  # type: ignore[no-untyped-def]
    _, out, rows = run
    report = write_report(out, plots=False).read_text()
    section = report.split("## Perplexity", 1)[1].split("\n## ", 1)[0]
    for scheme in ("advparams", "advparams-greedy", "hardened"):
        assert f"| {scheme} |" in section
    bar = next(r for r in rows if r.kind == "lock").metrics["perplexity_bar"]
    assert f"{bar:.2f}" in section and "1/1" in section
    assert "text only named right" in report and "prompts needed" in report


def test_strided_prompts_are_runs_of_the_owner_windows(language_model, corpus) -> None:  # type: ignore[no-untyped-def]
    from advparams import SCHEMES
    from advparams.errors import DataError
    from advparams.evaluation.tracing_black import make_prompt_tracer
    from advparams.tracing import QueryConfig, user_plan
    from advparams.tracing.mark import MarkConfig

    train, _ = corpus
    owner = SCHEMES.build("hardened", {"reproducible": True, "dither": 23, "seed": 0}).lock(language_model, train)
    plan = user_plan(owner.key, language_model, MarkConfig())
    pool = train.ids[:40]  # windows of 16 tokens
    tracer = make_prompt_tracer(language_model, plan, pool, ["a", "b"], QueryConfig(queries=60), 8, 4)
    runs = {tuple(w[s : s + 8].tolist()) for w in pool for s in (0, 4, 8)}  # 3 runs of 8 per window
    assert tracer.queries.shape == (60, 8) and all(tuple(q.tolist()) in runs for q in tracer.queries)
    with pytest.raises(
        DataError, match="holds 40 windows, fewer than the 60"
    ):  # 40 windows, one prompt each: too few for 60
        make_prompt_tracer(language_model, plan, pool, ["a", "b"], QueryConfig(queries=60), 8, None)
