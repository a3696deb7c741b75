import pytest
import torch

from advparams.attacks import Prune, PruneConfig, magnitude_prune, smallest_magnitude_mask
from advparams.testing import TinyConvNet


def weights(model):
    return {n: p.detach() for n, p in model.named_parameters() if p.dim() >= 2}


def test_mask_picks_smallest_with_exact_count_under_ties() -> None:
    v = torch.tensor([3.0, -1.0, 0.5, -0.5, 2.0, 0.5])
    assert smallest_magnitude_mask(v, 3).tolist() == [False, False, True, True, False, True]
    assert int(smallest_magnitude_mask(torch.zeros(10), 4).sum()) == 4  # all tied: still exactly 4


def test_half_pruning_per_layer_zeroes_half_of_each_tensor() -> None:
    torch.manual_seed(0)
    net = TinyConvNet()
    pruned = magnitude_prune(net, 0.5, "layer")
    for name, w in weights(pruned).items():
        original = weights(net)[name]
        zeros = w == 0
        assert int(zeros.sum()) == original.numel() // 2, name
        # every pruned weight is no larger in magnitude than every kept one
        assert float(original[zeros].abs().max()) <= float(original[~zeros].abs().min())
    assert torch.equal(pruned.head.bias, net.head.bias)  # 1-d parameters untouched by default


def test_global_pruning_ranks_across_tensors() -> None:
    torch.manual_seed(0)
    net = TinyConvNet()
    with torch.no_grad():
        net.head.weight.mul_(100.0)  # make one tensor dominant: global pruning should spare it
    pruned = magnitude_prune(net, 0.5, "global")
    total = sum(w.numel() for w in weights(net).values())
    zeros = sum(int((w == 0).sum()) for w in weights(pruned).values())
    assert zeros == total // 2
    # the dominant tensor keeps more than half, the others lose more than half
    assert float((pruned.head.weight == 0).float().mean()) < 0.5
    assert float((pruned.conv.weight == 0).float().mean()) > 0.5
    # globally, every pruned weight is no larger in magnitude than every kept one
    orig = torch.cat([w.reshape(-1) for w in weights(net).values()])
    new = torch.cat([w.reshape(-1) for w in weights(pruned).values()])
    assert float(orig[new == 0].abs().max()) <= float(orig[new != 0].abs().min())


def test_prune_attack_reports_zeros(trained) -> None:
    model, data = trained
    res = Prune(PruneConfig(rate=0.9)).run(model, data)
    n = sum(p.numel() for p in model.parameters() if p.dim() >= 2)
    assert res.info["zero_weights"] >= int(0.9 * n) - len(list(model.parameters()))


@pytest.mark.parametrize("bad", [{"rate": 1.0}, {"rate": -0.1}, {"scope": "channel"}])
def test_config_validation(bad) -> None:
    with pytest.raises(ValueError):
        PruneConfig(**bad)
