"""The fingerprints study on a tiny evaluation: units, rows, resume, config checks, report."""

from __future__ import annotations

import copy
import math
import statistics

import pytest

from advparams.checkpoint import load_checkpoint
from advparams.errors import AdvParamsError
from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.evaluation.context import null_seeds
from advparams.evaluation.fingerprints import fingerprint_path, negative_path
from advparams.evaluation.run import RunFolder
from advparams.fingerprints import load_fingerprint, similarity
from advparams.reports.markdown import build_report
from advparams.verification import MIN_SPREAD

TINY_FP = {
    "name": "tiny-fp",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0],
    "train": {"epochs": 3, "lr": 0.003, "batch_size": 32},
    "test_samples": 300,
    "null_models": 2,
    "lock_with": {"name": "advparams"},
    "watermarks": [{"name": "additional-class", "options": {"num_keys": 20, "epochs": 2}}],
    "attacks": [
        {"name": "finetune", "options": {"epochs": 1}, "grid": {"data_fraction": [0.2]}},
        {"name": "prune", "grid": {"rate": [0.5]}},
        {"name": "distill", "options": {"epochs": 2, "data_fraction": 0.5}},
        {"name": "relevance-evasion", "options": {"epochs": 1, "data_fraction": 0.2, "relevance_samples": 4}},
    ],
    "fingerprints": {
        "schemes": [
            {"name": "infip", "options": {"probes": 8, "pool": 16}},
            {"name": "ipguard", "options": {"points": 8, "steps": 20}},
        ],
        "fpr": 0.05,
        "negatives": 2,
        "other_models": [{"model": "vgg", "options": {"width": 4}, "count": 1}],
    },
    "stealth": False,
    "histograms": False,
}


@pytest.fixture(scope="module")
def fp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp") / "run"
    cfg = config_from_mapping(TINY_FP)
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


def test_negatives_fingerprints_and_suspects(fp_run) -> None:  # type: ignore[no-untyped-def]
    cfg, out, rows = fp_run
    models = sorted((r.scheme, r.seed, r.metrics["model"]) for r in rows if r.kind == "fp-model")
    assert models == [("lenet", 2000, "lenet"), ("lenet", 2001, "lenet"), ("vgg", 3000, "vgg")]
    fps = {r.scheme: r for r in rows if r.kind == "fingerprint"}
    assert set(fps) == {"infip", "ipguard"}
    for title, r in fps.items():
        m = r.metrics
        assert m["score"] == pytest.approx(1.0) and m["verified"]  # the owner's own model
        assert len(m["null_scores"]) == 2 and m["threshold"] > max(m["null_scores"])
        assert [(n["label"], n["seed"]) for n in m["negatives"]] == [("lenet", 2000), ("lenet", 2001), ("vgg", 3000)]
        assert m["negative_false_positives"] == sum(n["verified"] for n in m["negatives"])
        lock = m["then_lock"]
        assert lock["unlocked_bit_exact"] and lock["unlocked_verified"] and lock["unlocked_score"] == pytest.approx(1.0)
        assert m["extract_seconds"] > 0 and m["verify_seconds"] > 0
        fp = load_fingerprint(fingerprint_path(out, title, 0))
        assert fp.scheme == title and len(fp) == 8
        # The scores by hand: the saved null models and negatives against the saved fingerprint
        # (to float32's precision: InFIP's maps and SSIMs are float32 sums, measured 1e-8 apart).
        nulls = [load_checkpoint(RunFolder(out).null_path(s)).model for s in null_seeds(cfg)]
        assert m["null_scores"] == pytest.approx([similarity(n, fp) for n in nulls], abs=1e-6)
        negatives = [load_checkpoint(negative_path(out, n["label"], n["seed"])).model for n in m["negatives"]]
        assert [n["score"] for n in m["negatives"]] == pytest.approx([similarity(n, fp) for n in negatives], abs=1e-6)
        # The threshold by hand: the normal fit's upper fpr quantile, kept above every null score.
        fit = statistics.NormalDist(
            statistics.fmean(m["null_scores"]), max(statistics.stdev(m["null_scores"]), MIN_SPREAD)
        )
        want = max(fit.inv_cdf(1.0 - m["fpr"]), math.nextafter(max(m["null_scores"]), math.inf))
        assert m["threshold"] == pytest.approx(want, rel=1e-9)
        assert all(n["verified"] == (n["score"] >= want) for n in m["negatives"])
    suspects = {(r.scheme, r.attack) for r in rows if r.kind == "fp-suspect"}
    assert suspects == {
        (t, a) for t in ("infip", "ipguard") for a in ("finetune", "prune", "distill", "relevance-evasion")
    }
    for r in rows:
        if r.kind == "fp-suspect":
            m, owner = r.metrics, fps[r.scheme].metrics
            assert m["threshold"] == owner["threshold"] and m["verified"] == (m["score"] >= owner["threshold"])
            # P(null score >= score) under the normal fit of the fingerprint row's null scores
            nulls = owner["null_scores"]
            fit = statistics.NormalDist(statistics.fmean(nulls), max(statistics.stdev(nulls), MIN_SPREAD))
            assert m["p_value"] == pytest.approx(1.0 - fit.cdf(m["score"]), rel=1e-6, abs=1e-12)


def test_no_fingerprint_material_in_rows(fp_run) -> None:  # type: ignore[no-untyped-def]
    """Rows carry scores and decisions, never the probes (the owner's secret)."""
    _, out, _ = fp_run
    text = (out / "results.jsonl").read_text()
    assert "inputs" not in text and "maps" not in text


def test_resume_runs_nothing_again(fp_run) -> None:  # type: ignore[no-untyped-def]
    cfg, out, rows = fp_run
    again = evaluate_protection(cfg, out, device="cpu")
    session = [r for r in again if r.kind == "session"][-1]
    assert session.metrics["units_run"] == 0 and len(again) == len(rows) + 1


def test_report_sections(fp_run) -> None:  # type: ignore[no-untyped-def]
    cfg, _, rows = fp_run
    text = build_report(rows, cfg)
    assert "## Ownership fingerprints" in text
    assert "| distill |" in text and "| prune rate=0.5 |" in text and "negatives: vgg" in text
    assert "### Locked with advparams, then unlocked" in text
    assert "additional-class verified" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schemes": []}, "non-empty"),
        ({"schemes": [{"name": "nope"}]}, "unknown fingerprint"),
        ({"schemes": [{"name": "infip", "options": {"probes": 0}}]}, "probes"),
        ({"schemes": [{"name": "infip"}, {"name": "infip"}]}, "twice"),
        ({"fpr": 0.7}, "fpr"),
        ({"negatives": -1}, "negatives"),
        ({"other_models": [{"model": "lenet"}]}, "label the lenet entry"),
        ({"other_models": [{"model": "nope"}]}, "unknown model"),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_bad_fingerprint_sections_are_refused(change, message) -> None:
    raw = copy.deepcopy(TINY_FP)
    raw["fingerprints"] = {**raw["fingerprints"], **change}
    with pytest.raises(AdvParamsError, match=message):
        config_from_mapping(raw)


def test_a_fingerprint_only_config_is_accepted() -> None:
    raw = {k: v for k, v in TINY_FP.items() if k not in ("watermarks",)}
    cfg = config_from_mapping(raw)
    assert cfg.fingerprints is not None and not cfg.watermarks
    assert config_from_mapping(cfg.to_dict()) == cfg


def test_attacks_on_keys_and_queries_are_not_run_on_fingerprints(tmp_path) -> None:
    """They are about locks and watermark queries: a fingerprint study skips them."""
    from advparams.evaluation.context import RunContext
    from advparams.evaluation.fingerprints import FingerprintsStudy

    raw = {k: v for k, v in TINY_FP.items() if k != "watermarks"}
    raw["attacks"] = [*TINY_FP["attacks"], {"name": "key-leak"}, {"name": "detector-evasion"}]
    import torch

    study = FingerprintsStudy(RunContext(config_from_mapping(raw), tmp_path, torch.device("cpu")))
    attacked = {u.id.split("/")[1] for u in study.units() if u.id.startswith("fp-attack/")}
    assert attacked == {"finetune", "prune", "distill", "relevance-evasion"}
