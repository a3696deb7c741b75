"""The detector-evasion attack: only the flagged answers change, to the second-ranked label."""

from __future__ import annotations

import torch

from advparams.attacks import ATTACKS, EvasionWrapper, second_ranked
from advparams.data.synthetic import make_synthetic
from advparams.fingerprint import state_equal
from advparams.models import build_model


def test_second_ranked_swaps_only_flagged_rows() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g)
    flags = torch.rand(50, generator=g) > 0.5
    out = second_ranked(logits, flags)
    assert torch.equal(out[~flags], logits[~flags])
    assert torch.equal(out[flags].argmax(1), logits[flags].topk(2, dim=1).indices[:, 1])
    assert torch.equal(out.sort(1).values, logits.sort(1).values)  # the same scores, two swapped


def test_the_evasion_wrapper_changes_only_flagged_answers() -> None:
    data = make_synthetic(400, noise=60.0)
    net = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0)
    before = build_model("lenet", {"num_classes": 10, "in_channels": 1, "input_size": 16}, seed=0)
    for detector in ("strip", "adversarial"):
        res = ATTACKS.build(
            "detector-evasion", {"detector": detector, "data_fraction": 0.5, "calibration": 100, "frr": 0.2}
        ).run(net, data)
        assert state_equal(net, before), "the attack changed its input"
        wrapper = res.model
        assert isinstance(wrapper, EvasionWrapper)
        x, _ = data.tensors(torch.arange(200))
        with torch.no_grad():
            plain = net.eval()(x).argmax(1)
            answered = wrapper(x).argmax(1)
            second = net(x).topk(2, dim=1).indices[:, 1]
        flags = wrapper.flagged(x)
        assert 0 < int(flags.sum()) < 200, "the calibrated detector flags some queries, not all"
        assert torch.equal(answered[~flags], plain[~flags])
        assert torch.equal(answered[flags], second[flags])
        assert res.info["calibration_frr"] <= 0.2
