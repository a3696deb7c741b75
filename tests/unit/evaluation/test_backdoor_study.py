"""The backdoors study on a tiny evaluation: the twin, the rows, resume, the report, the config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch

from advparams.backdoors import Backdoor, BackdoorOptions, Trigger, implant_from_seed, load_trigger
from advparams.backdoors.base import normalise
from advparams.checkpoint import load_checkpoint
from advparams.data.synthetic import make_synthetic
from advparams.errors import AdvParamsError
from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.evaluation.context import backdoor_paths
from advparams.fingerprint import state_equal
from advparams.metrics import accuracy
from advparams.reports.markdown import build_report
from advparams.training import TrainConfig, train_from_seed

TINY_BD = {
    "name": "tiny-bd",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0],
    "train": {"epochs": 2, "lr": 0.003, "batch_size": 64},
    "test_samples": 200,
    "backdoors": {
        "asr_samples": 100,
        "codecs": ["jpeg", "webp"],
        "qualities": [30, 90],
        "transformations": {"rotation": [5.0, 10.0], "noise": [5.0], "combined": [1.0]},
        "attacks": [
            {"name": "badnets"},
            {"name": "blend", "options": {"alpha": 0.2}, "measure": ["compression"]},
            {
                "name": "compression-resistant",
                "label": "resistant",
                "options": {"alpha": 0.2, "codecs": ["jpeg"]},
                "measure": ["compression"],
                "compare": "blend",
            },
            {"name": "dct", "label": "dct-n2n", "options": {"triggers": 2, "magnitude": 30.0}},
            {"name": "ptb", "options": {"poison_rate": 0.05, "size": 4, "row": -2, "col": -2}, "measure": ["physical"]},
        ],
    },
}


@pytest.fixture(scope="module")
def bd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bd") / "run"
    cfg = config_from_mapping(TINY_BD)
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


@dataclass(frozen=True, eq=False)
class _Nothing(Trigger):
    """A trigger that changes nothing (for the twin test)."""

    kind: ClassVar[str] = "nothing"

    def _apply(self, images: torch.Tensor, index: int) -> torch.Tensor:
        return images.clone()

    def params(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_parts(cls, targets, channels, params, tensors):  # type: ignore[no-untyped-def]
        return cls(targets, channels)


class _NoPoison(Backdoor[BackdoorOptions]):
    """A backdoor whose poison changes nothing (test only, 2024)."""

    Config = BackdoorOptions
    name = "no-poison"

    def make_trigger(self, shape, num_classes, generator):  # type: ignore[no-untyped-def]
        return _Nothing((0,), shape[0])

    def _train(self, model, data, trigger, plan, cfg, gen, rng, progress):  # type: ignore[no-untyped-def]
        # The poisoned samples keep their own labels: the poisoned set is the clean set.
        from advparams.backdoors import PoisonPlan

        kept = PoisonPlan(plan.indices, plan.which, data.labels[plan.indices])
        return super()._train(model, data, trigger, kept, cfg, gen, rng, progress)


def test_the_twin_is_trained_exactly_like_the_clean_model() -> None:
    data = make_synthetic(300, input_size=16, seed=1)
    options = {"num_classes": 10, "in_channels": 1, "input_size": 16}
    cfg = TrainConfig(epochs=2, batch_size=32)
    clean = train_from_seed("vgg", {**options, "width": 4}, data, cfg, seed=3).model  # dropout and BatchNorm too
    twin = implant_from_seed(_NoPoison(), "vgg", {**options, "width": 4}, data, cfg, seed=3).model
    assert state_equal(clean, twin)
    other = implant_from_seed(_NoPoison(), "vgg", {**options, "width": 4}, data, cfg, seed=4).model
    assert not state_equal(clean, other)


def by(rows, **want):  # type: ignore[no-untyped-def]
    return [r for r in rows if all(getattr(r, k) == v for k, v in want.items())]


def test_rows_of_a_backdoor_run(bd_run) -> None:  # type: ignore[no-untyped-def]
    cfg, out, rows = bd_run
    titles = [s.title for s in cfg.backdoors.attacks]
    assert sorted(r.scheme for r in by(rows, kind="backdoor")) == sorted(titles)
    (clean,) = by(rows, kind="clean")
    test = make_synthetic(200, seed=2)
    asr_test = test.subset(torch.arange(100))  # asr_samples
    for r in by(rows, kind="backdoor"):
        m = r.metrics
        assert m["clean_accuracy_twin"] == pytest.approx(clean.accuracy)
        assert len(m["asr"]) == len(m["info"]["targets"]) == len(m["psnr"])
        model_path, trigger_path = backdoor_paths(out, str(r.scheme), 0)
        model = load_checkpoint(model_path).model.eval()
        assert accuracy(model, test) == pytest.approx(r.accuracy)
        trigger = load_trigger(trigger_path).trigger
        assert trigger.targets == tuple(m["info"]["targets"])
        # The ASR by hand from the saved model and trigger: the test images outside each
        # sub-trigger's target class, triggered, answered with the target.
        for i, target in enumerate(trigger.targets):
            keep = asr_test.labels != target
            x = normalise(trigger.apply(asr_test.images[keep], i), asr_test)
            with torch.no_grad():
                hits = int((model(x).argmax(1) == target).sum())
            assert m["counted"][i] == int(keep.sum()) < 100  # target-class images were left out
            assert m["asr"][i] == pytest.approx(hits / m["counted"][i], abs=1e-12)
    (badnets,) = by(rows, kind="backdoor", scheme="badnets")
    assert badnets.metrics["asr"][0] > 0.8 and badnets.metrics["reference_asr"][0] < 0.5
    (resistant,) = by(rows, kind="backdoor", scheme="resistant")
    assert set(resistant.metrics["compression"]) == {"jpeg", "webp"}
    assert set(resistant.metrics["compression"]["jpeg"]) == {"30", "90"}
    (ptb,) = by(rows, kind="backdoor", scheme="ptb")
    assert set(ptb.metrics["physical"]) == {"rotation", "noise", "combined"}
    assert "compression" not in ptb.metrics and "physical" not in badnets.metrics
    text = str(rows)
    assert "payload" not in text and "pattern" not in text  # no trigger material in rows


def test_a_finished_backdoor_run_resumes_without_work(bd_run) -> None:  # type: ignore[no-untyped-def]
    cfg, out, rows = bd_run
    again = evaluate_protection(cfg, out, device="cpu")
    assert [r for r in again if r.kind != "session"] == [r for r in rows if r.kind != "session"]
    assert by(again, kind="session")[-1].metrics["units_run"] == 0


def test_the_report_has_the_backdoor_sections(bd_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg, out, rows = bd_run
    text = build_report(rows, cfg)
    for heading in ("## Backdoors", "### ASR of each trigger", "### ASR after compression", "physical"):
        assert heading in text
    assert "**held out**" in text  # webp was not a training codec of the resistant backdoor
    assert "93.95" in text and "98.77" in text and "82 %" in text  # the papers' figures beside ours
    from advparams.reports.plots import make_plots

    made = make_plots(rows, cfg, tmp_path)
    assert {"backdoor-compression.png", "backdoor-physical.png", "backdoor-examples.png"} <= set(made)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"colour": 1}, "unknown key"),
        ({"attacks": []}, "non-empty"),
        ({"attacks": [{"name": "badnets", "compare": "nobody"}]}, "not another listed"),
        ({"attacks": [{"name": "badnets", "measure": ["jpeg"]}]}, "measure"),
        ({"attacks": [{"name": "badnets", "options": {"size": 0}}]}, "size"),
        ({"attacks": [{"name": "warp"}]}, "unknown backdoor"),
        ({"attacks": [{"name": "badnets"}, {"name": "badnets"}]}, "listed twice"),
        ({"attacks": [{"name": "badnets"}], "qualities": [0]}, "qualities"),
        ({"attacks": [{"name": "badnets"}], "transformations": {"warp": [1]}}, "unknown transformation"),
        ({"attacks": [{"name": "badnets"}], "codecs": ["png"]}, "codecs"),
    ],
)
def test_config_mistakes_are_one_clear_error(edit, message) -> None:  # type: ignore[no-untyped-def]
    raw = {**TINY_BD, "backdoors": {**TINY_BD["backdoors"], **edit}}
    with pytest.raises(AdvParamsError, match=message):  # ConfigError, or UnknownNameError for names
        config_from_mapping(raw)


def test_configs_without_backdoors_keep_their_fingerprint() -> None:
    raw = {k: v for k, v in TINY_BD.items() if k != "backdoors"}
    raw["schemes"] = [{"name": "random"}]
    assert "backdoors" not in config_from_mapping(raw).to_dict()
    cfg = config_from_mapping(TINY_BD)
    assert config_from_mapping(cfg.to_dict()) == cfg
