"""Detector evasion run by the watermark study: rows, the wrapper's cost, the report table."""

from __future__ import annotations

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.checkpoint import load_checkpoint
from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.evaluation.context import RunContext
from advparams.reports.markdown import build_report
from advparams.watermarks import load_watermark_key

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
    cfg, out, rows = ev_run
    (marked,) = [r for r in rows if r.kind == "watermark"]
    attacked = [r for r in rows if r.kind == "wm-attack"]
    assert [r.setting for r in attacked] == [{"detector": "strip"}, {"detector": "adversarial", "steps": 3}]
    # The per-query answers by hand: the wrapper answers a flagged query with the watermarked
    # model's second-ranked label and any other query with its top label.
    ctx = RunContext(cfg, out, torch.device("cpu"))
    ckpt, key_path = ctx.run.watermark_paths("content", 0)
    model, key = load_checkpoint(ckpt).model.eval(), load_watermark_key(key_path)
    x, y = key.inputs(), key.labels
    test_x, test_y = ctx.test.tensors()
    with torch.no_grad():
        top2, test_top2 = model(x).topk(2, dim=1).indices, model(test_x).topk(2, dim=1).indices
    hits = int((top2[:, 0] == y).sum())
    assert marked.metrics["watermark_accuracy"] == pytest.approx(hits / len(y))
    for r in attacked:
        m = r.metrics
        assert m["info"]["calibration_frr"] <= 0.1
        # Each flagged key loses its hit or gains one (when its second label is the key's):
        # the retention lies within the flagged count of the watermarked model's hits.
        flagged = round(m["key_queries_flagged"] * len(y))
        assert m["key_queries_flagged"] * len(y) == pytest.approx(flagged, abs=1e-4)
        assert hits - flagged <= round(m["retention"] * len(y)) <= hits + flagged
        # Only flagged answers change: accuracy moves by at most the share flagged.
        assert abs(marked.accuracy - r.accuracy) <= m["test_queries_flagged"] + 1e-6
    # STRIP's wrapper again from its row's options (its draws are seeded; the adversarial
    # detector's fit would double this file's time), every answer worked out by hand.
    m = attacked[0].metrics
    wrapper = ATTACKS.build("detector-evasion", m["options"]).run(model, ctx.train).model
    flags, test_flags = wrapper.flagged(x), wrapper.flagged(test_x)
    # the queries flagged are those whose score is above the threshold the row records
    assert torch.equal(flags, wrapper.detector.score(x) > m["info"]["threshold"])
    assert m["key_queries_flagged"] == pytest.approx(float(flags.double().mean()), abs=1e-6)  # a float32 mean
    assert m["test_queries_flagged"] == pytest.approx(float(test_flags.double().mean()), abs=1e-6)
    answers = torch.where(flags, top2[:, 1], top2[:, 0])
    assert m["retention"] == pytest.approx(float((answers == y).double().mean()), abs=1e-12)
    test_answers = torch.where(test_flags, test_top2[:, 1], test_top2[:, 0])
    assert attacked[0].accuracy == pytest.approx(float((test_answers == test_y).double().mean()), abs=1e-6)
    text = build_report(rows, cfg, command="advparams evaluate-protection ...")
    assert "### Detector evasion" in text and "detector-evasion (detector=strip)" in text
