"""Triggers: what each kind changes, and the DCT payload read back."""

from __future__ import annotations

import pytest
import torch

from advparams.backdoors import BACKDOORS, BlendTrigger, DCTTrigger, PatchTrigger
from advparams.backdoors.triggers import blocks_dct, dct_matrix
from advparams.errors import AdvParamsError


def _mid_range(n: int, c: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Images in [60, 195], so that no trigger is clipped."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(60, 196, (n, c, size, size), generator=g, dtype=torch.int64).to(torch.uint8)


def _dct_trigger(channels: int = 3, **options: object) -> DCTTrigger:
    bd = BACKDOORS.build("dct", {"triggers": 3, **options})
    trig = bd.make_trigger((channels, 32, 32), 10, torch.Generator().manual_seed(0))
    assert isinstance(trig, DCTTrigger)
    return trig


def test_dct_matrix_is_orthonormal() -> None:
    d = dct_matrix(8)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_dct_trigger_changes_only_its_coefficients_and_channel(index: int) -> None:
    trig = _dct_trigger()
    x = _mid_range(4, 3)
    ch = trig.channel_of[index]
    assert trig.channel_of == (0, 1, 2)  # one colour channel per trigger
    before = x.double()
    after = trig.embed(before, index)
    others = [c for c in range(3) if c != ch]
    assert torch.equal(after[:, others], before[:, others])  # float path: other channels untouched
    diff = blocks_dct(after[:, ch], 8) - blocks_dct(before[:, ch], 8)
    named = torch.zeros(8, 8, dtype=torch.bool)
    for u, v in trig.positions[index]:
        named[u, v] = True
    assert float(diff[..., ~named].abs().max()) < 1e-9  # no other coefficient moves
    assert float(diff[..., named].abs().min()) > 0  # the named ones do
    coef = blocks_dct(after[:, ch], 8)[..., named]
    assert torch.allclose(coef.abs(), torch.full_like(coef, trig.magnitude))
    # After rounding to uint8 the other channels are byte-identical.
    stamped = trig.apply(x, index)
    assert torch.equal(stamped[:, others], x[:, others])
    assert bool((stamped[:, ch] != x[:, ch]).any())


@pytest.mark.parametrize("space", ["rgb", "ycbcr"])
def test_dct_payload_is_read_back_from_a_triggered_image(space: str) -> None:
    trig = _dct_trigger(colour_space=space)
    x = _mid_range(8, 3, seed=1)
    for i in range(3):
        assert float(trig.read(trig.apply(x, i), i).min()) >= 0.95
        assert float(trig.read(x, i).mean()) < 0.75  # a clean image carries no payload
    # Each trigger reads its own payload, not its neighbour's channel.
    assert float(trig.read(trig.apply(x, 0), 1).mean()) < 0.75


def test_dct_on_grey_images_separates_triggers_by_coefficients() -> None:
    trig = _dct_trigger(channels=1)
    assert trig.channel_of == (0, 0, 0)
    assert len({tuple(p) for p in trig.positions}) == 3
    x = _mid_range(4, 1)
    for i in range(3):
        assert float(trig.read(trig.apply(x, i), i).min()) >= 0.95


def test_patch_changes_only_masked_pixels_at_its_place() -> None:
    mask = torch.tensor([[True, False], [True, True]])
    pattern = torch.full((3, 2, 2), 7, dtype=torch.uint8)
    trig = PatchTrigger((1,), 3, pattern=pattern, mask=mask, row=-1, col=-2)
    x = _mid_range(2, 3, size=8)
    y = trig.apply(x, 0)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[6:8, 5:7] = mask
    assert torch.equal(y[:, :, expected], torch.full_like(y[:, :, expected], 7))
    assert torch.equal(y[:, :, ~expected], x[:, :, ~expected])
    assert trig.place(8, 8) == (6, 5)
    with pytest.raises(AdvParamsError, match="does not fit"):
        PatchTrigger((1,), 3, pattern=pattern, mask=mask, row=7, col=0).apply(x, 0)


def test_blend_is_the_convex_mix() -> None:
    pattern = torch.full((1, 4, 4), 200, dtype=torch.uint8)
    trig = BlendTrigger((0,), 1, pattern=pattern, alpha=0.25)
    x = torch.full((1, 1, 4, 4), 100, dtype=torch.uint8)
    assert torch.equal(trig.apply(x), torch.full_like(x, 125))
    with pytest.raises(AdvParamsError, match="made for"):
        trig.apply(torch.zeros(1, 1, 5, 5, dtype=torch.uint8))


def test_apply_never_changes_its_input_and_checks_channels() -> None:
    trig = _dct_trigger()
    x = _mid_range(2, 3)
    copy = x.clone()
    trig.apply(x, 2)
    assert torch.equal(x, copy)
    with pytest.raises(AdvParamsError, match="3-channel"):
        trig.apply(_mid_range(1, 1), 0)
    with pytest.raises(AdvParamsError, match="does not exist"):
        trig.apply(x, 3)
