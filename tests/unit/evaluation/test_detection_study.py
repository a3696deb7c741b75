"""The detection study on a tiny evaluation: its units, rows, resume and report."""

from __future__ import annotations

import pytest

from advparams.errors import ConfigError
from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.reports.markdown import build_report

TINY_DET = {
    "name": "tiny-det",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0],
    "train": {"epochs": 3, "lr": 0.003, "batch_size": 32},
    "test_samples": 500,
    "null_models": 1,
    "backdoors": {
        "asr_samples": 100,
        "attacks": [
            {"name": "badnets", "options": {"poison_rate": 0.1}},
            {"name": "dct", "label": "dct-n2n", "options": {"triggers": 2, "magnitude": 30.0}},
        ],
    },
    "detection": {
        "detectors": [
            {"name": "adversarial", "options": {"steps": 5, "calibration": 50}},
            {"name": "strip", "options": {"overlays": 8, "calibration": 50}},
            {"name": "neural-cleanse", "label": "nc", "options": {"steps": 20, "calibration": 50, "patience": 5}},
        ],
        "eval_samples": 100,
        "clean_samples": 150,
        "sanitise": ["badnets"],
        "sanitise_with": ["strip", "nc"],
        "keep_scores": 200,  # every score: the rates and the AUC are recomputed from them
    },
}


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "run"
    cfg = config_from_mapping(TINY_DET)
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


def _flagged(scores: list[float], threshold: float) -> float:
    """The share of ``scores`` strictly above ``threshold``, rounded as the row rounds scores."""
    return sum(s > float(f"{threshold:.6g}") for s in scores) / len(scores)


def _auc(clean: list[float], triggered: list[float]) -> float:
    """The chance that a triggered score beats a clean one, ties half: every pair counted."""
    wins = sum((t > c) + 0.5 * (t == c) for t in triggered for c in clean)
    return wins / (len(clean) * len(triggered))


def test_detection_rows(det_run) -> None:  # type: ignore[no-untyped-def]
    cfg, _, rows = det_run
    det = [r for r in rows if r.kind == "detection"]
    assert sorted((r.scheme, r.attack) for r in det) == sorted(
        (b, d) for b in ("badnets", "dct-n2n") for d in ("adversarial", "strip", "nc")
    )
    for r in det:
        m = r.metrics
        assert set(m["tpr"]) == set(m["fpr"]) == set(m["thresholds"]) == {"0.05", "0.01"}
        clean, triggered = m["clean_scores"], m["triggered_scores"]
        # The rates and the AUC by hand from the scores the row keeps (all of them here).
        for rate, threshold in m["thresholds"].items():
            assert m["tpr"][rate] == pytest.approx(_flagged(triggered, threshold), abs=1e-12), (r.attack, rate)
            assert m["fpr"][rate] == pytest.approx(_flagged(clean, threshold), abs=1e-12), (r.attack, rate)
        assert m["auc"] == pytest.approx(_auc(clean, triggered), abs=1e-9), r.attack
        assert m["calibration_frr"] <= 0.05
        assert m["clean_counted"] == len(clean) == 100 and len(triggered) == m["triggered_counted"]
        assert m["triggered_counted"] == (90 if r.scheme == "badnets" else 180)  # target-class samples left out
        assert m["seconds_per_image"] > 0
        if r.attack == "adversarial":
            assert m["natural_threshold"] == 0.0 and m["triggered_l2"] <= 3.0 + 1e-6  # universal
        if r.attack == "nc":
            assert len(m["inspection"]["anomaly_index"]) == 10
    inspections = [r for r in rows if r.kind == "inspection"]
    assert sorted(r.seed for r in inspections) == [0, 1000] and {r.attack for r in inspections} == {"nc"}
    sans = [r for r in rows if r.kind == "sanitise"]
    assert sorted(r.attack for r in sans) == ["nc", "strip"]
    (clean_row,) = [r for r in rows if r.kind == "clean"]
    for san in sans:
        m = san.metrics
        assert m["kept"] + m["flagged"] == m["train_samples"] == 2000 and m["poisoned"] == 200
        assert 0 <= m["flagged_poisoned"] <= min(m["flagged"], m["poisoned"])
        assert m["recall"] == pytest.approx(m["flagged_poisoned"] / 200)
        assert m["precision"] == pytest.approx(m["flagged_poisoned"] / m["flagged"] if m["flagged"] else 0.0)
        assert len(m["asr_after"]) == 1
        # A whole number of the 500 test images; the model retrained on what was kept learns
        # the task as the clean one did (measured 1.0 with both detectors, clean 1.0).
        assert san.accuracy * 500 == pytest.approx(round(san.accuracy * 500), abs=1e-3)
        assert san.accuracy >= clean_row.accuracy - 0.05, san.attack


def test_detection_resumes_without_work(det_run) -> None:  # type: ignore[no-untyped-def]
    cfg, out, rows = det_run
    again = evaluate_protection(cfg, out, device="cpu")
    session = [r for r in again if r.kind == "session"][-1]
    assert session.metrics["units_run"] == 0
    assert len(again) == len(rows) + 1


def test_detection_report(det_run) -> None:  # type: ignore[no-untyped-def]
    cfg, _, rows = det_run
    text = build_report(rows, cfg, command="advparams evaluate-protection ...")
    assert "## Backdoor detection" in text and "99.63" in text
    assert "Training-set sanitisation" in text and "Neural Cleanse" in text


def test_detection_config_is_checked() -> None:
    bad = {**TINY_DET, "detection": {**TINY_DET["detection"], "sanitise": ["nope"]}}
    with pytest.raises(ConfigError, match="nope"):
        config_from_mapping(bad)
    bad = {**TINY_DET, "detection": {**TINY_DET["detection"], "detectors": [{"name": "strip", "options": {"x": 1}}]}}
    with pytest.raises(ConfigError, match="unknown option"):
        config_from_mapping(bad)
    without = {k: v for k, v in TINY_DET.items() if k != "backdoors"}
    with pytest.raises(ConfigError, match="backdoors section"):
        config_from_mapping({**without, "schemes": [{"name": "random"}]})
    cfg = config_from_mapping(TINY_DET)
    assert config_from_mapping(cfg.to_dict()) == cfg


def test_detection_plots(det_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from advparams.reports import write_report

    _, out, _ = det_run
    report = write_report(out, tmp_path / "rep")
    text = report.read_text()
    for name in ("detect-roc.png", "detect-scores.png"):
        assert (tmp_path / "rep" / "plots" / name).stat().st_size > 1000
        assert f"plots/{name}" in text
