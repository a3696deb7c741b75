import pytest
import torch

from advparams.attacks import Clip, ClipConfig, clip_to_percentiles


def test_planted_extremes_are_pulled_back_and_the_rest_untouched() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(50, 20))
    w = net[0].weight
    with torch.no_grad():
        w[0, 0], w[1, 1] = 50.0, -50.0  # planted extremes
    q = torch.quantile(w.detach().reshape(-1), torch.tensor([0.05, 0.95]))
    clipped = clip_to_percentiles(net, 5.0, 95.0)
    cw = clipped[0].weight.detach()
    assert float(cw[0, 0]) == pytest.approx(float(q[1])) and float(cw[1, 1]) == pytest.approx(float(q[0]))
    inside = (w.detach() >= q[0]) & (w.detach() <= q[1])
    assert torch.equal(cw[inside], w.detach()[inside])
    assert float(cw.max()) <= float(q[1]) + 1e-6 and float(cw.min()) >= float(q[0]) - 1e-6
    assert float(w.detach()[0, 0]) == 50.0  # input untouched
    assert torch.equal(clipped[0].bias, net[0].bias)


def test_clip_attack_and_validation(trained) -> None:
    model, data = trained
    res = Clip(ClipConfig(low=0.0, high=100.0)).run(model, data)
    assert all(torch.equal(a, b) for a, b in zip(res.model.parameters(), model.parameters(), strict=True))
    with pytest.raises(ValueError):
        ClipConfig(low=60.0)
