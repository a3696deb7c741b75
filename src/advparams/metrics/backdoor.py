"""Backdoor measures as pure functions: attack success rate, PSNR and SSIM.

The attack success rate counts only samples whose true class is not the target: a
target-class sample that is "classified as the target" says nothing about the trigger
(a known bug of toolkits that count them, which inflates the ASR by about one class's
share).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from advparams.errors import AdvParamsError


def attack_success_rate(predictions: torch.Tensor, true_labels: torch.Tensor, target: int) -> float:
    """Share of triggered samples answered with ``target``, over those whose true label is
    not ``target``.

    Args:
        predictions: the model's labels for the triggered samples ``[N]``.
        true_labels: their true labels ``[N]``.
        target: the backdoor's target label.

    Raises:
        AdvParamsError: no sample has a true label other than ``target``.

    Example:
        >>> attack_success_rate(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 1, 1, 2]), 0)
        0.6666666666666666
    """
    if predictions.shape != true_labels.shape or predictions.dim() != 1:
        raise AdvParamsError(
            f"predictions and labels must be two [N] tensors, got {tuple(predictions.shape)} "
            f"and {tuple(true_labels.shape)}"
        )
    keep = true_labels != target
    counted = int(keep.sum())
    if counted == 0:
        raise AdvParamsError(f"no sample has a true label other than the target {target}: the ASR is undefined")
    return int((predictions[keep] == target).sum()) / counted


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 4:
        raise AdvParamsError(
            f"two image batches [N, C, H, W] of one shape are needed, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    return a.double(), b.double()


def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 255.0) -> float:
    """Mean over images of the peak signal-to-noise ratio of ``a`` against ``b``, in dB
    (``inf`` where some pair is identical).

    Example:
        >>> x = torch.zeros(1, 1, 4, 4); y = x.clone(); y[0, 0, 0, 0] = 255
        >>> round(psnr(x, y), 3)  # MSE = 255^2 / 16
        12.041
    """
    x, y = _pair(a, b)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    if bool((mse == 0).any()):
        return math.inf
    return float((10 * torch.log10(data_range**2 / mse)).mean())


def _gaussian_window(sigma: float, truncate: float) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_images(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 255.0, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al., IEEE TIP 2004) of each image of ``a`` against
    the same image of ``b``: a float64 tensor ``[N]`` (differentiable).

    Gaussian window of ``sigma`` (truncated at 3.5 sigma: 11x11 at 1.5), ``K1 = 0.01``,
    ``K2 = 0.03``, population covariances, every channel apart; the mean over the
    positions where the window fits, then over channels. These are scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``, which the tests compare against.
    """
    x, y = _pair(a, b)
    win = _gaussian_window(sigma, 3.5).to(x.device)
    k = win.shape[0]
    if x.shape[-1] < k or x.shape[-2] < k:
        raise AdvParamsError(f"SSIM needs images of at least {k}x{k}, got {tuple(x.shape[-2:])}")
    n, c = x.shape[:2]
    x, y = x.reshape(n * c, 1, *x.shape[2:]), y.reshape(n * c, 1, *y.shape[2:])
    w = win.view(1, 1, k, k)
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    vx = F.conv2d(x * x, w) - mx * mx
    vy = F.conv2d(y * y, w) - my * my
    cov = F.conv2d(x * y, w) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).view(n, c).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 255.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of ``a`` against ``b``: :func:`ssim_images` averaged
    over the images."""
    return float(ssim_images(a, b, data_range=data_range, sigma=sigma).mean())


__all__ = ["attack_success_rate", "psnr", "ssim", "ssim_images"]
