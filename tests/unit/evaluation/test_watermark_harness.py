"""The harness on a tiny watermark evaluation: null models, calibration, attacks, resume,
the report sections, and the config's checks."""

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.attacks.querymod import reconstruction_error
from advparams.checkpoint import load_checkpoint
from advparams.errors import ConfigError
from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.evaluation.context import RunContext
from advparams.reports.markdown import build_report
from advparams.watermarks import load_watermark_key

TINY_WM = {
    "name": "tiny-wm",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0],
    "train": {"epochs": 2},
    "test_samples": 200,
    "null_models": 2,
    "fpr": 1e-3,
    "users": 3,
    "lock_with": {"name": "hardened", "options": {"reproducible": True}},
    "watermarks": [
        {"name": "additional-class", "options": {"num_keys": 20, "epochs": 2}},
        {"name": "zhang-content", "options": {"num_keys": 20, "epochs": 2}, "label": "content"},
    ],
    "attacks": [
        {"name": "prune", "grid": {"rate": [0.3, 0.9]}},
        {"name": "query-modify", "options": {"epochs": 1}},
    ],
}


@pytest.fixture(scope="module")
def wm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wm") / "run"
    cfg = config_from_mapping(TINY_WM)
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


def by(rows, **want):
    return [r for r in rows if all(getattr(r, k) == v for k, v in want.items())]


def test_rows_of_a_watermark_run(wm_run) -> None:
    cfg, out, rows = wm_run
    assert {r.seed for r in by(rows, kind="null")} == {1000, 1001}
    assert by(rows, kind="lock") == [] and by(rows, kind="attack") == []
    for w in ("additional-class", "content"):
        (row,) = by(rows, kind="watermark", scheme=w)
        m = row.metrics
        assert len(m["null_scores"]) == 2 and m["fpr"] == 1e-3
        assert m["threshold"] > max(m["null_scores"])
        assert m["verified"] == (m["watermark_accuracy"] >= m["threshold"])
        assert m["null_false_positives"] == 0
        assert m["then_lock"]["unlocked_bit_exact"] is True
        assert m["then_lock"]["unlocked_watermark_accuracy"] == m["watermark_accuracy"]
        settings = [r.setting for r in by(rows, kind="wm-attack", scheme=w)]
        assert settings == [{"rate": 0.3}, {"rate": 0.9}, {}]
    extra = by(rows, kind="watermark", scheme="additional-class")[0].metrics
    assert extra["forged_rejected"] == 1.0 and extra["unknown_rejected"] == 1.0 and extra["users"] == 3
    assert "authentication_success" not in by(rows, kind="watermark", scheme="content")[0].metrics
    train = RunContext(cfg, out, torch.device("cpu")).train
    for r in by(rows, kind="wm-attack", attack="query-modify"):
        # The same filter again from the row's options (its draws are seeded), and its
        # answers to the key images by hand: flagged ones (reconstruction error above the
        # threshold the row records) are altered, the others answered as before.
        marked = load_checkpoint(out / "watermarks" / f"{r.scheme}-seed0").model.eval()
        wkey = load_watermark_key(out / "watermarks" / f"{r.scheme}-seed0.wmkey")
        x = wkey.inputs()
        wrapper = ATTACKS.build("query-modify", r.metrics["options"]).run(marked, train).model
        flags = reconstruction_error(wrapper.autoencoder, x) > r.metrics["info"]["threshold"]
        assert torch.equal(flags, wrapper.flagged(x))
        assert r.metrics["key_queries_flagged"] == pytest.approx(float(flags.double().mean()), abs=1e-6)
        with torch.no_grad():
            answers, before = wrapper(x).argmax(1), marked(x).argmax(1)
        assert torch.equal(answers[~flags], before[~flags])
        assert r.metrics["retention"] == pytest.approx(float((answers == wkey.labels).double().mean()), abs=1e-12)
    # Saved artefacts: the model with its extra output and the key it answers.
    model = load_checkpoint(out / "watermarks" / "additional-class-seed0").model
    key = load_watermark_key(out / "watermarks" / "additional-class-seed0.wmkey")
    assert key.num_classes == 11 and key.score(model) == extra["watermark_accuracy"]


def test_resume_adds_only_a_session(wm_run) -> None:
    cfg, out, rows = wm_run
    again = evaluate_protection(cfg, out, device="cpu")
    new = {r.key for r in again} - {r.key for r in rows}
    assert all(k[0] == "session" for k in new) and len(new) == 1
    before = {r.key: r for r in rows if r.kind != "session"}
    assert all(before[r.key] == r for r in again if r.kind != "session")


def test_report_has_the_watermark_sections(wm_run) -> None:
    cfg, _, rows = wm_run
    text = build_report(rows, cfg)
    for heading in (
        "## Watermarks",
        "### Fingerprint authentication",
        "### Watermark, then lock",
        "## Attacks on the watermarks",
    ):
        assert heading in text
    assert "## Locking" not in text
    assert "| prune (rate=0.9) |" in text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"watermarks": [{"name": "nope"}]}, "unknown watermark"),
        ({"watermarks": []}, "no schemes, no watermarks, no backdoors, no fingerprints and no tracing"),
        ({"fpr": 2}, "fpr"),
        ({"null_models": 0}, "null_models"),
        ({"watermarks": [{"name": "zhang-noise"}, {"name": "zhang-noise"}]}, "twice"),
        ({"watermarks": [{"name": "zhang-noise", "options": {"noise_std": 5}}]}, "noise_std"),
        ({"lock_with": {"name": "nope"}}, "unknown scheme"),
    ],
)
def test_config_errors(change, match) -> None:
    with pytest.raises(
        ConfigError if match != "unknown watermark" and match != "unknown scheme" else Exception, match=match
    ):
        config_from_mapping({**TINY_WM, **change})
