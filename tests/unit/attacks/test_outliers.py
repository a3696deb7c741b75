import pytest
import torch

from advparams import AdvParams
from advparams.attacks import OutlierReset, OutlierResetConfig, find_suspects
from advparams.keys import Key, KeyEntry
from advparams.metrics import detection_scores


def planted():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 50, generator=g) * 0.1
    positions = torch.tensor([3, 777, 1500])
    w.view(-1)[positions] = torch.tensor([2.0, -2.0, 1.5])  # 15-20 standard deviations out
    net = torch.nn.Sequential(torch.nn.Linear(50, 40, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w)
    return net, positions


def test_zscore_finds_planted_outliers_and_resets_to_median() -> None:
    net, positions = planted()
    idx = find_suspects(net[0].weight, OutlierResetConfig(z_threshold=5.0))
    assert idx.tolist() == positions.tolist()
    res = OutlierReset(OutlierResetConfig(z_threshold=5.0)).run(net, None)
    w = res.model[0].weight.detach().reshape(-1)
    others = torch.ones(w.numel(), dtype=torch.bool)
    others[positions] = False
    assert torch.all(w[positions] == net[0].weight.detach().reshape(-1)[others].median())
    assert res.info["suspects"] == {"0.weight": positions.tolist()}
    assert float(net[0].weight.detach().reshape(-1)[3]) == 2.0  # input untouched


def test_extreme_band_and_zero_reset() -> None:
    net, positions = planted()
    res = OutlierReset(OutlierResetConfig(method="extreme", extreme_fraction=0.05, reset="zero")).run(net, None)
    # the band at each end of the range [-2, 2] is 0.2 wide: the planted -2 and 2 are in it,
    # the planted 1.5 (far out in z-score, but not near the extremes) is not
    assert res.info["suspects"]["0.weight"] == [3, 777]
    assert torch.all(res.model[0].weight.detach().reshape(-1)[positions[:2]] == 0)
    assert float(res.model[0].weight.detach().reshape(-1)[1500]) == 1.5


def test_detection_scores_against_a_key() -> None:
    _, positions = planted()
    key = Key((KeyEntry("0.weight", positions, torch.zeros(3), torch.ones(3)),), "o", "l", "manual")
    assert detection_scores({"0.weight": positions.tolist()}, key) == (1.0, 1.0)
    assert detection_scores({"0.weight": [3, 4, 5, 6]}, key) == (0.25, pytest.approx(1 / 3))
    assert detection_scores({}, key) == (0.0, 0.0)


def test_scores_on_a_real_lock(trained) -> None:
    model, data = trained
    result = AdvParams().lock(model, data)
    attack = OutlierReset(OutlierResetConfig(method="extreme", extreme_fraction=0.05)).run(result.model, data)
    precision, recall = detection_scores(attack.info["suspects"], result.key)
    assert 0.0 <= precision <= 1.0 and 0.0 <= recall <= 1.0
    found = sum(len(v) for v in attack.info["suspects"].values())
    assert precision * found == pytest.approx(recall * result.key.num_changed)  # both count the same hits


@pytest.mark.parametrize("bad", [{"method": "iqr"}, {"extreme_fraction": 0.5}, {"z_threshold": 0}, {"reset": "mean"}])
def test_config_validation(bad) -> None:
    with pytest.raises(ValueError):
        OutlierResetConfig(**bad)
