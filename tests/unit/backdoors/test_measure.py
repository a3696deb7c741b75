"""measure_backdoor: every setting checked before an image is measured."""

from __future__ import annotations

import pytest
import torch

from advparams.backdoors import BACKDOORS
from advparams.backdoors.measure import COMBINED, measure_backdoor
from advparams.errors import AdvParamsError


class _Refuse(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("an image was measured before the settings were checked")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"codecs": ["jpeg"], "qualities": [0]}, r"quality must be an integer in \[1, 95\], got 0"),
        ({"codecs": ["jpeg"], "qualities": [50.5]}, "got 50.5"),
        ({"codecs": ["gif"], "qualities": [50]}, "unknown codec 'gif'"),
        ({"transformations": {"blur": [float("nan")]}}, r"blur strength must be a number in \[0, 10\]"),
        ({"transformations": {"warp": [1.0]}}, "unknown transformation 'warp'"),
        ({"transformations": {COMBINED: [-1.0]}, "combined_ranges": {"blur": 1.0}}, "combined strength"),
        ({"transformations": {COMBINED: [1.0]}}, "needs the ranges"),
    ],
)
def test_settings_are_refused_before_any_image_is_measured(grey, options, message) -> None:  # type: ignore[no-untyped-def]
    trigger = BACKDOORS.build("badnets", {}).make_trigger((1, 16, 16), 10, torch.Generator())
    with pytest.raises(AdvParamsError, match=message):
        measure_backdoor(_Refuse(), trigger, grey, **options)


def test_no_test_image_is_one_clear_error(grey) -> None:  # type: ignore[no-untyped-def]
    """Before: an empty test set was a torch.cat error (an "unexpected" one at the CLI)."""
    trigger = BACKDOORS.build("badnets", {}).make_trigger((1, 16, 16), 10, torch.Generator())
    with pytest.raises(AdvParamsError, match="no test images"):
        measure_backdoor(_Refuse(), trigger, grey.subset(torch.arange(0)))
