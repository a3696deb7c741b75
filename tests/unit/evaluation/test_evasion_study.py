"""Detector evasion run by the watermark study: rows, the wrapper's cost, the report table."""

from __future__ import annotations

import pytest

from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.reports.markdown import build_report

TINY_EVASION = {
    "name": "tiny-evasion",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0],
    "train": {"epochs": 2},
    "test_samples": 200,
    "null_models": 2,
    "fpr": 1e-3,
    "watermarks": [{"name": "zhang-content", "options": {"num_keys": 20, "epochs": 2}, "label": "content"}],
    "attacks": [
        {
            "name": "detector-evasion",
            "options": {"calibration": 40, "frr": 0.1},
            "cases": [{"detector": "strip"}, {"detector": "adversarial", "steps": 3}],
        }
    ],
    "stealth": False,
    "histograms": False,
}


@pytest.fixture(scope="module")
def ev_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "run"
    cfg = config_from_mapping(TINY_EVASION)
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


def test_evasion_rows_and_cost(ev_run) -> None:  # type: ignore[no-untyped-def]
    cfg, _, rows = ev_run
    (marked,) = [r for r in rows if r.kind == "watermark"]
    attacked = [r for r in rows if r.kind == "wm-attack"]
    assert [r.setting for r in attacked] == [{"detector": "strip"}, {"detector": "adversarial", "steps": 3}]
    for r in attacked:
        m = r.metrics
        assert 0.0 <= m["key_queries_flagged"] <= 1.0 and 0.0 <= m["test_queries_flagged"] <= 1.0
        assert m["info"]["calibration_frr"] <= 0.1
        # Only flagged answers change: accuracy moves by at most the share flagged.
        assert abs(marked.accuracy - r.accuracy) <= m["test_queries_flagged"] + 1e-9
        assert m["retention"] <= marked.metrics["watermark_accuracy"] + 1e-9 or m["key_queries_flagged"] > 0
    text = build_report(rows, cfg, command="advparams evaluate-protection ...")
    assert "### Detector evasion" in text and "detector-evasion (detector=strip)" in text
