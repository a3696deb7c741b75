"""The detectors: the L2 attack on a hand-made linear model, STRIP's entropy, the calibrated
false-rejection rate, Neural Cleanse on a planted trigger, and the contract of every member."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advparams.backdoors import BACKDOORS
from advparams.data.synthetic import make_synthetic
from advparams.detectors import DETECTORS, NeuralCleanse, Strip, l2_attack, mean_entropy, sanitise
from advparams.errors import AdvParamsError
from advparams.fingerprint import state_equal
from advparams.metrics.screening import flag_rate, roc_auc, roc_curve, threshold_at_frr
from advparams.models import build_model
from advparams.training import TrainConfig


class Linear2(nn.Module):
    """Two classes: logit 1 is ``v . x - c``, logit 0 is 0; ``v`` all ones over 16 pixels."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(16), requires_grad=False)
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w - self.c
        return torch.stack([torch.zeros_like(s), s], 1)


def _linear_case(distance: float) -> tuple[Linear2, torch.Tensor]:
    """A model whose boundary lies ``distance`` (L2) from the input 0.5 everywhere."""
    x = torch.full((1, 1, 4, 4), 0.5)
    # v . x0 = 8; the distance to v . x = c along v / |v| (|v| = 4) is (c - 8) / 4.
    return Linear2(8.0 + 4.0 * distance), x


@pytest.mark.parametrize(("distance", "budget", "moves"), [(0.8, 1.0, True), (1.2, 1.0, False), (0.3, 0.5, True)])
def test_l2_attack_moves_the_label_when_and_only_when_it_can(distance: float, budget: float, moves: bool) -> None:
    model, x = _linear_case(distance)
    moved, l2, margin, delta = l2_attack(model, x, lambda p: p, budget=budget, steps=40, step_size=0.1)
    assert bool(moved[0]) is moves
    assert float(delta.flatten(1).norm(dim=1)[0]) <= budget + 1e-5, "the perturbation left its budget"
    assert float((x + delta).min()) >= 0.0 and float((x + delta).max()) <= 1.0
    if moves:
        assert float(l2[0]) == pytest.approx(distance, abs=1e-4)  # interpolated: exact on a linear model
        assert float(margin[0]) < 0
    else:
        assert float(margin[0]) > 0 and float(l2[0]) == pytest.approx(budget, abs=1e-5)


def test_l2_attack_respects_the_budget_on_a_real_net() -> None:
    net = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0).eval()
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    for budget in (0.1, 0.5, 2.0):
        _, l2, _, delta = l2_attack(net, x, lambda p: (p - 0.5) / 0.3, budget=budget, steps=10, step_size=budget / 4)
        assert float(delta.flatten(1).norm(dim=1).max()) <= budget + 1e-5
        assert float(l2.max()) <= budget + 1e-5


class Constant(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.k) + self.dummy


class MeanLogit(nn.Module):
    """Two classes with logits (s * mean(x), 0): the softmax of a blend is known in closed form."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.tensor(s), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.s * x.flatten(1).mean(1)
        return torch.stack([m, torch.zeros_like(m)], 1)


def _entropy2(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_strip_entropy_of_a_constant_model_is_log_k() -> None:
    data = (torch.rand(60, 1, 4, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(60, dtype=torch.long))
    det = Strip(Strip.Config(overlays=8, calibration=20)).fit(Constant(7), data)
    s = det.score(torch.rand(5, 1, 4, 4))
    assert torch.allclose(s, torch.full((5,), -math.log(7), dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize(
    ("blend", "v", "blended"),
    [("weighted", 0.9, 0.5 * 0.9 + 0.5 * 0.2), ("add", 0.5, 0.7), ("add", 0.9, 1.0)],  # adding clips at 1
)
def test_strip_entropy_on_a_hand_made_case(blend: str, v: float, blended: float) -> None:
    # Overlays all equal to u = 0.2, the input all v: each blend has the mean `blended`.
    u, s = 0.2, 3.0
    data = (torch.full((40, 1, 4, 4), u), torch.zeros(40, dtype=torch.long))
    det = Strip(Strip.Config(overlays=5, calibration=20, blend=blend)).fit(MeanLogit(s), data)
    p = 1 / (1 + math.exp(-s * blended))
    got = det.score(torch.full((1, 1, 4, 4), v))
    assert float(got[0]) == pytest.approx(-_entropy2(p), abs=1e-6)
    assert float(mean_entropy(torch.tensor([[[1.0, 0.0]]]))[0]) == pytest.approx(0.0, abs=1e-12)


def test_strip_superimposes_every_input_with_every_overlay() -> None:
    from advparams.detectors.strip import superimpose

    x, o = torch.tensor([[0.9], [0.3]]), torch.tensor([[0.2], [0.6]])
    got = superimpose(x, o, "add")
    assert got.shape == (2, 2, 1)
    assert got.flatten().tolist() == pytest.approx([1.0, 1.0, 0.5, 0.9])  # input 0.9 clips at 1
    with pytest.raises(ValueError, match="blend must be one of add, weighted"):
        Strip.Config(blend="mean")


@pytest.mark.parametrize("frr", [0.01, 0.05, 0.1, 0.2])
def test_the_threshold_gives_the_stated_frr_on_the_calibration_data(frr: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 1, 4, 4, generator=g) * torch.rand(400, 1, 1, 1, generator=g)
    data = (x, torch.zeros(400, dtype=torch.long))
    det = Strip(Strip.Config(overlays=8, calibration=200, frr=frr)).fit(MeanLogit(8.0), data)
    assert det.calibration_scores is not None and det.calibration_scores.unique().numel() == 200
    assert det.calibration_frr() == math.floor(frr * 200 + 1e-9) / 200
    assert flag_rate(det.calibration_scores, det.threshold_for(0.5)) == 0.5


def test_screening_metrics() -> None:
    assert threshold_at_frr(torch.arange(100.0), 0.05) == 94.0
    assert flag_rate(torch.arange(100.0), 94.0) == 0.05
    assert threshold_at_frr([1.0, 1.0, 1.0, 2.0], 0.5) == 1.0  # ties kept together: rate 0.25
    gen = torch.Generator().manual_seed(0)
    neg, pos = torch.randn(50, generator=gen), torch.randn(40, generator=gen) + 1
    brute = float(((pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()).mean())
    assert roc_auc(neg, pos) == pytest.approx(brute)
    assert roc_auc([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)
    fpr, tpr = roc_curve(neg, pos)
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert all(b >= a for a, b in zip(fpr, fpr[1:], strict=False))
    with pytest.raises(AdvParamsError):
        threshold_at_frr([float("nan")], 0.1)


class Planted(nn.Module):
    """Template matching over 10 classes, plus a planted backdoor: a white 2x2 patch in the
    top-left corner sends every input to class 3 (a hand-made backdoored model)."""

    def __init__(self, templates: torch.Tensor) -> None:
        super().__init__()
        self.t = nn.Parameter(templates.flatten(1).clone(), requires_grad=False)
        self.head = nn.Linear(10, 10)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(10))
            self.head.bias.zero_()
        self.head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x * 0.3 + 0.5  # the synthetic set's normalisation, undone
        score = -((p.flatten(1)[:, None] - self.t[None]) ** 2).sum(-1)
        patch = p[:, 0, :2, :2].flatten(1).mean(1).clamp(0, 1)
        bonus = torch.zeros_like(score)
        bonus[:, 3] = 300.0 * patch**16  # smooth, so that gradients lead to it
        return self.head(score + bonus)


def test_neural_cleanse_finds_a_planted_trigger() -> None:
    data = make_synthetic(300, noise=20.0)
    g = torch.Generator().manual_seed(0)
    templates = torch.rand(10, 1, 16, 16, generator=g)  # the synthetic set's templates, in [0, 1]
    det = NeuralCleanse(NeuralCleanse.Config(steps=200, calibration=50, patience=5)).fit(Planted(templates), data)
    info = det.inspection
    assert info["suspect"] == 3 and 3 in info["flagged"] and info["backdoored"]
    assert info["norms"][3] < 0.1 * sorted(info["norms"])[5]
    stamped = data.images[:20].clone()
    stamped[:, :, :2, :2] = 255
    x_clean, _ = data.tensors(torch.arange(20))
    x_trig = (stamped.float() / 255 - 0.5) / 0.3
    assert float(det.detect(x_trig).double().mean()) > float(det.detect(x_clean).double().mean())


def test_neural_cleanse_flags_nothing_on_a_clean_template_model() -> None:
    class Clean(Planted):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = x * 0.3 + 0.5
            return self.head(-((p.flatten(1)[:, None] - self.t[None]) ** 2).sum(-1))

    data = make_synthetic(300, noise=20.0)
    templates = torch.rand(10, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    det = NeuralCleanse(NeuralCleanse.Config(steps=200, calibration=50, patience=5)).fit(Clean(templates), data)
    assert det.inspection["flagged"] == []


@pytest.fixture(params=DETECTORS.names())
def detector_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_contract(detector_name: str) -> None:
    """Every registered detector: the input model unchanged, the stated FRR on calibration,
    scores reproducible, bool decisions, one clear error before fit and on too little data."""
    data = make_synthetic(200)
    net = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0)
    before = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0)
    cls = DETECTORS.get(detector_name)
    det = DETECTORS.build(detector_name, dict(cls.tiny))
    assert cls.__doc__ and "20" in cls.__doc__.splitlines()[0]  # names the paper and its year
    x, _ = data.tensors(torch.arange(30))
    with pytest.raises(AdvParamsError, match="not fitted"):
        det.score(x)
    det.fit(net, data)
    assert state_equal(net, before) and all(p.requires_grad for p in net.parameters())
    assert det.calibration_frr() <= det.config.frr
    s1, s2 = det.score(x), det.score(x)
    assert s1.shape == (30,) and s1.dtype == torch.float64 and torch.equal(s1, s2)
    flags = det.detect(x)
    assert flags.dtype == torch.bool and torch.equal(flags, s1 > det.threshold)
    again = DETECTORS.build(detector_name, dict(cls.tiny)).fit(net, data)
    assert torch.equal(again.score(x), s1), "same seed, same detector"
    with pytest.raises(AdvParamsError, match="clean samples"):
        DETECTORS.build(detector_name, dict(cls.tiny)).fit(net, data.subset(torch.arange(10)))
    assert (det.inspection != {}) is cls.inspects_model


def test_sanitise_flags_poisoned_samples() -> None:
    data = make_synthetic(600, noise=30.0)
    bd = BACKDOORS.build("badnets", {"poison_rate": 0.1})
    poisoned = bd.poison_dataset(data)
    net = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0)
    res = bd.implant(net, data, train=TrainConfig(epochs=10, lr=3e-3, batch_size=32))
    # poison_dataset is the implant's own poisoned set: same samples, same labels
    assert res.info["poisoned"] == len(poisoned.plan) == 60
    assert int((poisoned.data.labels != data.labels).sum()) == 60 - int((data.labels[poisoned.plan.indices] == 0).sum())
    det = DETECTORS.build("strip", {"calibration": 100, "blend": "weighted"}).fit(
        res.model, make_synthetic(300, seed=5)
    )
    s = sanitise(det, poisoned.data)
    assert len(s.data) + s.flagged.numel() == len(data)
    assert not torch.isin(s.kept, s.flagged).any()
    assert torch.equal(s.data.labels, poisoned.data.labels[s.kept])
    assert s.recall(poisoned.plan.indices) > 0.9
    assert s.precision(poisoned.plan.indices) > 0.3


@pytest.mark.parametrize(("distance", "moves"), [(0.8, True), (1.2, False)])
def test_the_universal_perturbation_respects_its_budget(distance: float, moves: bool) -> None:
    model, x = _linear_case(distance)
    data = (x.repeat(60, 1, 1, 1), torch.zeros(60, dtype=torch.long))
    det = DETECTORS.build("adversarial", {"mode": "universal", "budget": 1.0, "calibration": 20, "universal_steps": 50})
    det.fit(model, data)
    assert float(det.universal.norm()) <= 1.0 + 1e-5
    score, facts = det.score_with_facts(x)
    assert bool(facts["moved"][0]) is moves and (float(score[0]) < 0) is moves
    assert det.natural_threshold == 0.0
