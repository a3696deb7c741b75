"""Deep Taylor Decomposition relevance maps (Montavon et al., Pattern Recognition 2017) through zennit.

The DTD map of a ReLU classifier for class ``c`` at input ``x`` redistributes the score
``f_c(x)`` back to the input, layer by layer:

* hidden convolutions and linear layers: the z+ rule,
  ``R_i = sum_j x_i w+_ij / (sum_i' x_i' w+_i'j) R_j`` (zennit's ``ZPlus``);
* the first layer, whose inputs lie in a box ``[low, high]`` (the normalised image of
  pixels 0 and 255): the z^B rule (zennit's ``ZBox``);
* average pooling: the rule that keeps relevance (zennit's ``Norm``); ReLUs and max
  pooling pass relevance as their gradient does; BatchNorm is merged into the
  convolution or linear layer before it first (zennit's ``SequentialMergeBatchNorm``).

Biases take no relevance (zennit's ``zero_params=["bias"]``), as in the DTD derivation, so
the map sums to ``f_c(x)`` whatever the biases: the conservation the tests check, beside
a two-layer case worked by hand.

Why zennit is loaded the way it is: zennit 0.5.1 (the newest release on PyPI here)
imports torchvision at import time, for canonizers of torchvision's ResNets that
advparams never uses, and torchvision does not import beside the pinned CPU build of
torch. :func:`zennit_modules` imports zennit with a placeholder for those two torchvision
classes when the real torchvision is missing, and removes the placeholder from
``sys.modules`` at once, so a later ``import torchvision`` behaves as it would have.
Install it with ``pip install --no-deps zennit==0.5.1`` (``make`` does).
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from advparams.errors import AdvParamsError
from advparams.metrics.accuracy import select_logits

_ZENNIT: dict[str, Any] = {}
_STUBS = ("torchvision", "torchvision.models", "torchvision.models.resnet")


@contextmanager
def _torchvision_placeholder() -> Iterator[None]:
    saved = {name: sys.modules[name] for name in _STUBS if name in sys.modules}
    package = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    resnet = types.ModuleType("torchvision.models.resnet")

    class _NeverUsed(nn.Module):
        """Placeholder for torchvision's ResNet blocks (only zennit's torchvision canonizers name them)."""

    resnet.Bottleneck = _NeverUsed  # type: ignore[attr-defined]
    resnet.BasicBlock = _NeverUsed  # type: ignore[attr-defined]
    package.models = models  # type: ignore[attr-defined]
    models.resnet = resnet  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": package, "torchvision.models": models, "torchvision.models.resnet": resnet})
    try:
        yield
    finally:
        for name in _STUBS:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def _forget_zennit() -> None:
    for name in [n for n in sys.modules if n == "zennit" or n.startswith("zennit.")]:
        del sys.modules[name]


def zennit_modules() -> dict[str, Any]:
    """zennit's ``attribution``, ``canonizers``, ``composites``, ``rules`` and ``types``.

    Raises:
        AdvParamsError: zennit is not installed (the message says how to install it).
    """
    if _ZENNIT:
        return _ZENNIT
    try:
        import zennit  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name == "zennit":
            raise AdvParamsError(
                "DTD relevance maps need zennit: pip install --no-deps zennit==0.5.1 (make installs it)"
            ) from None
        if not (exc.name or "").startswith("torchvision"):
            raise
        _forget_zennit()
        with _torchvision_placeholder():
            import zennit  # noqa: F401
    except RuntimeError:  # a torchvision that is installed but does not load beside this torch
        _forget_zennit()
        with _torchvision_placeholder():
            import zennit  # noqa: F401
    from zennit import attribution, canonizers, composites, rules
    from zennit import types as ztypes

    _ZENNIT.update(attribution=attribution, canonizers=canonizers, composites=composites, rules=rules, types=ztypes)
    return _ZENNIT


def _composite(low: torch.Tensor, high: torch.Tensor, merge_batch_norm: bool) -> Any:
    z = zennit_modules()
    rules, zt = z["rules"], z["types"]
    hidden = [
        (zt.Convolution, rules.ZPlus(zero_params=["bias"])),
        (zt.Linear, rules.ZPlus(zero_params=["bias"])),
        (zt.AvgPool, rules.Norm()),
    ]
    first = [(zt.Linear, rules.ZBox(low, high, zero_params=["bias"]))]
    canon = [z["canonizers"].SequentialMergeBatchNorm()] if merge_batch_norm else []
    return z["composites"].SpecialFirstLayerMapComposite(layer_map=hidden, first_map=first, canonizers=canon)


class ScoresOnly(nn.Module):
    """``model`` whose output is only its class scores (:func:`select_logits`), for tools
    that run a module and expect a tensor back; it adds no layer of its own."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return select_logits(self.model(x))


def dtd_relevance(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
    create_graph: bool = False,
    merge_batch_norm: bool | None = None,
) -> torch.Tensor:
    """The DTD relevance of each input for its label: a tensor of the inputs' shape.

    Args:
        model: a ReLU classifier returning ``[N, K]`` scores; it is not changed (without
            ``create_graph`` a copy is explained; with it, the model itself, in eval mode
            for the call, so that gradients reach its parameters).
        inputs: ``[N, C, H, W]`` model inputs.
        labels: ``[N]`` the class explained for each input.
        low: lowest possible input value (a number or a tensor broadcastable to one
            input, e.g. ``[1, C, 1, 1]``): the z^B rule's box.
        high: highest possible input value, likewise.
        create_graph: keep the graph, so the map can be differentiated (the adaptive
            attack); BatchNorm is then not merged (the merge writes the weights in place),
            and the map is only that of the unmerged network.
        merge_batch_norm: merge BatchNorm before the rules (default: unless
            ``create_graph``); ``False`` gives the unmerged network's map, to compare with
            one made with ``create_graph``.

    Raises:
        AdvParamsError: zennit is missing, or the labels do not fit the scores.
    """
    z = zennit_modules()
    net = model if create_graph else copy.deepcopy(model)
    was = net.training
    net.eval()
    x = inputs.detach().clone().requires_grad_(True)
    lo = torch.as_tensor(low, dtype=x.dtype, device=x.device)
    hi = torch.as_tensor(high, dtype=x.dtype, device=x.device)
    merge = (not create_graph) if merge_batch_norm is None else merge_batch_norm
    if merge and create_graph:
        raise AdvParamsError("BatchNorm cannot be merged for a differentiable map (the merge writes weights in place)")
    composite = _composite(lo, hi, merge_batch_norm=merge)
    labels = labels.to(x.device).long()

    def explained(scores: torch.Tensor) -> torch.Tensor:
        if scores.dim() != 2 or labels.shape != (scores.shape[0],):
            raise AdvParamsError(f"labels {tuple(labels.shape)} do not fit the model's scores {tuple(scores.shape)}")
        if int(labels.min()) < 0 or int(labels.max()) >= scores.shape[1]:
            raise AdvParamsError(f"labels must lie in [0, {scores.shape[1]})")
        one_hot = torch.nn.functional.one_hot(labels, scores.shape[1]).to(scores.dtype)
        return one_hot * scores.detach()  # the relevance put on the output: f_c(x) at class c

    try:
        # zennit differentiates the module's own output: the scores are taken out of a
        # tuple, dict or Hugging Face output first, as every verb reads them
        with z["attribution"].Gradient(ScoresOnly(net), composite, create_graph=create_graph) as attributor:
            _, relevance = attributor(x, explained)
    finally:
        net.train(was)
    return relevance if create_graph else relevance.detach()


def fingerprint_images(relevance: torch.Tensor) -> torch.Tensor:
    """Relevance maps ``[N, C, H, W]`` as fingerprint images ``[N, 1, H, W]`` in [0, 1]:
    summed over channels, divided by each map's largest magnitude and shifted so that no
    relevance is 0.5 (a heat map: positive above, negative below) [inferred]. Differentiable.

    The shift matters for SSIM: on signed maps of mean near zero, SSIM's luminance and
    structure terms both turn negative for an inverted map, and their product is positive;
    on the shifted image an inverted map has a negative SSIM, as it should."""
    if relevance.dim() != 4:
        raise AdvParamsError(f"relevance maps must be [N, C, H, W], got {tuple(relevance.shape)}")
    maps = relevance.sum(1, keepdim=True)
    scale = maps.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return 0.5 + 0.5 * maps / scale


__all__ = ["dtd_relevance", "fingerprint_images", "zennit_modules"]
