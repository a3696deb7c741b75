"""Backdoor measures: ASR without target-class samples, PSNR, SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from advparams.errors import AdvParamsError
from advparams.metrics.backdoor import attack_success_rate, psnr, ssim


def test_asr_ignores_samples_of_the_target_class() -> None:
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 3, 4])
    # A model that keeps every label: counting target-class samples would give 4/8.
    assert attack_success_rate(labels.clone(), labels, 0) == 0.0
    # Every non-target sample moved to the target: 1.0 whatever the target class does.
    preds = torch.tensor([5, 5, 5, 5, 0, 0, 0, 0])
    assert attack_success_rate(preds, labels, 0) == 1.0
    assert attack_success_rate(torch.tensor([0, 0, 0, 0, 0, 2, 0, 4]), labels, 0) == 0.5


def test_asr_errors() -> None:
    with pytest.raises(AdvParamsError, match="undefined"):
        attack_success_rate(torch.tensor([1, 1]), torch.tensor([1, 1]), 1)
    with pytest.raises(AdvParamsError, match="two"):
        attack_success_rate(torch.tensor([1, 1]), torch.tensor([1]), 0)


def test_psnr_by_hand() -> None:
    a = torch.zeros(2, 1, 4, 4)
    b = a.clone()
    b[0, 0, 0, 0] = 255.0  # MSE 255^2/16 -> 10 log10(16)
    b[1] = 10.0  # MSE 100
    expected = (10 * math.log10(16) + 10 * math.log10(255**2 / 100)) / 2
    assert psnr(a, b) == pytest.approx(expected)
    assert psnr(a, a) == math.inf


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels: int) -> None:
    g = torch.Generator().manual_seed(channels)
    for noise in (3.0, 30.0):
        a = torch.randint(0, 256, (3, channels, 28, 28), generator=g).float()
        b = (a + noise * torch.randn(a.shape, generator=g)).round().clamp(0, 255)
        ref = np.mean(
            [
                structural_similarity(
                    a[i].numpy().astype(np.float64),
                    b[i].numpy().astype(np.float64),
                    data_range=255,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    channel_axis=0,
                )
                for i in range(3)
            ]
        )
        assert ssim(a, b) == pytest.approx(ref, abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(AdvParamsError, match="at least 11x11"):
        ssim(a[:, :, :8, :8], b[:, :, :8, :8])


def test_ssim_per_image_of_signed_maps_matches_scikit_image() -> None:
    """Signed maps (data range 2), one SSIM per image: SSIM's terms on zero-mean signed data
    both turn negative for an inverted map, so it scores high (why InFIP's fingerprint
    images are shifted to [0, 1] first; see tests/unit/fingerprints)."""
    from advparams.metrics.backdoor import ssim_images

    g = torch.Generator().manual_seed(5)
    a = torch.rand(4, 1, 28, 28, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(a.shape, generator=g)).clamp(-1, 1)
    b[2] = -a[2]  # an inverted map: SSIM well below zero
    got = ssim_images(a, b, data_range=2.0)
    ref = [
        structural_similarity(
            a[i, 0].numpy().astype(np.float64),
            b[i, 0].numpy().astype(np.float64),
            data_range=2.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(4)
    ]
    assert got.shape == (4,) and got.tolist() == pytest.approx(ref, abs=1e-9)
    assert float(got[2]) > 0.3  # inverted, yet similar
