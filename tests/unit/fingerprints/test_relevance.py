"""DTD relevance through zennit, checked against properties that hold independently of it:
a two-layer case worked by hand, conservation, and the BatchNorm merge."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

from advparams.errors import AdvParamsError
from advparams.fingerprints import dtd_relevance, fingerprint_images


def test_two_layer_case_worked_by_hand() -> None:
    """z^B at the input (box [0, 1]), z+ above, biases taking no relevance.

    Hidden a = relu(W1 x) = (0.25, 1.25); class 0 scores 0.25 + 2 * 1.25 = 2.75.
    z+ (both weights to class 0 positive): R_hidden = (0.25, 2.5).
    z^B for hidden unit k: z_ik = x_i w_ik - l w+_ik - h w-_ik with l = 0, h = 1:
      unit 0, w = (1, -1): z = (0.5, -0.25 + 1) = (0.5, 0.75) -> R = 0.25 * z / 1.25 = (0.1, 0.15);
      unit 1, w = (2, 1):  z = (1.0, 0.25) -> R = 2.5 * z / 1.25 = (2.0, 0.5).
    So R_input = (2.1, 0.65).
    """
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 1.0]]))
    x = torch.tensor([[0.5, 0.25]])
    r = dtd_relevance(net, x, torch.tensor([0]), low=0.0, high=1.0)
    assert r.tolist()[0] == pytest.approx([2.1, 0.65], abs=1e-5)


def test_relevance_is_conserved_and_the_model_untouched() -> None:
    """The map sums to the explained score f_c(x), biases and pooling included."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
    )
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    before = copy.deepcopy(net.state_dict())
    scores = net(x).detach()
    labels = scores.argmax(1)
    r = dtd_relevance(net, x, labels, low=-1.0, high=1.0)
    expected = scores.gather(1, labels.view(-1, 1)).squeeze(1)
    assert r.shape == x.shape
    assert r.flatten(1).sum(1) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert "torchvision" not in sys.modules or hasattr(sys.modules["torchvision"], "__file__")


def test_batch_norm_is_merged_before_the_rules() -> None:
    """A conv followed by BatchNorm gives the map of the single merged conv."""
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5]))
        bn.weight.copy_(torch.tensor([1.5, 0.7, 1.1]))
        bn.bias.copy_(torch.tensor([0.2, -0.1, 0.0]))
    head = nn.Linear(3 * 8 * 8, 4)
    with_bn = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), head).eval()
    merged_conv = nn.Conv2d(1, 3, 3, padding=1, bias=True)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        merged_conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        merged_conv.bias.copy_(bn.bias - bn.running_mean * scale)
    merged = nn.Sequential(merged_conv, nn.ReLU(), nn.Flatten(), copy.deepcopy(head)).eval()
    x = torch.rand(3, 1, 8, 8)
    labels = torch.tensor([0, 1, 2])
    assert torch.allclose(with_bn(x), merged(x), atol=1e-5)
    a = dtd_relevance(with_bn, x, labels, low=0.0, high=1.0)
    b = dtd_relevance(merged, x, labels, low=0.0, high=1.0)
    assert torch.allclose(a, b, atol=1e-5)
    assert with_bn[1].running_var.tolist() == pytest.approx([0.5, 2.0, 1.5])  # the merge was undone


def test_differentiable_maps_reach_the_parameters() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = torch.rand(2, 1, 8, 8)
    r = dtd_relevance(net, x, torch.tensor([0, 1]), low=0.0, high=1.0, create_graph=True)
    fingerprint_images(r).pow(2).sum().backward()
    assert net[0].weight.grad is not None and float(net[0].weight.grad.abs().sum()) > 0


def test_fingerprint_images_are_scaled_maps() -> None:
    r = torch.zeros(2, 3, 4, 4)
    r[0, 0, 1, 1], r[0, 2, 1, 1], r[0, 1, 0, 0] = 2.0, 2.0, -1.0
    img = fingerprint_images(r)
    assert img.shape == (2, 1, 4, 4)
    assert float(img[0, 0, 1, 1]) == 1.0 and float(img[0, 0, 0, 0]) == 0.5 - 0.125
    assert float(img[0, 0, 3, 3]) == 0.5 and torch.equal(img[1], torch.full((1, 4, 4), 0.5))


def test_an_inverted_map_scores_below_zero_and_a_copy_one() -> None:
    """Why the images are shifted to [0, 1]: SSIM must punish a map that is turned over."""
    from advparams.metrics.backdoor import ssim_images

    r = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    a, inverted = fingerprint_images(r), fingerprint_images(-r)
    assert ssim_images(a, a, data_range=1.0, sigma=1.5).tolist() == pytest.approx([1.0] * 3)
    assert float(ssim_images(a, inverted, data_range=1.0, sigma=1.5).max()) < 0.0


def test_bad_labels_are_one_clear_error() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(AdvParamsError, match=r"\[0, 3\)"):
        dtd_relevance(net, torch.rand(1, 1, 2, 2), torch.tensor([3]), low=0.0, high=1.0)
