"""Image material for watermark keys: a tiny bitmap font, glyph images, block shuffles,
and the extra output of the additional-class scheme. All randomness comes from a
``torch.Generator``."""

from __future__ import annotations

import copy

import torch
from torch import nn

from advparams.errors import AdvParamsError

# 3x5 bitmap glyphs ("#" = ink), enough for Zhang et al.'s "TEST" logo and for digits.
_GLYPHS = {
    "T": ["###", ".#.", ".#.", ".#.", ".#."],
    "E": ["###", "#..", "##.", "#..", "###"],
    "S": ["###", "#..", "###", "..#", "###"],
    "0": ["###", "#.#", "#.#", "#.#", "###"],
    "1": [".#.", "##.", ".#.", ".#.", "###"],
    "2": ["###", "..#", "###", "#..", "###"],
    "3": ["###", "..#", "###", "..#", "###"],
    "4": ["#.#", "#.#", "###", "..#", "..#"],
    "5": ["###", "#..", "###", "..#", "###"],
    "6": ["###", "#..", "###", "#.#", "###"],
    "7": ["###", "..#", ".#.", ".#.", ".#."],
    "8": ["###", "#.#", "###", "#.#", "###"],
    "9": ["###", "#.#", "###", "..#", "###"],
}


def text_mask(text: str, scale: int = 1) -> torch.Tensor:
    """A bool mask ``[5 * scale, (4 * len(text) - 1) * scale]`` of ``text`` in the 3x5 font."""
    cols = []
    for i, ch in enumerate(text):
        if ch not in _GLYPHS:
            raise AdvParamsError(f"no glyph for {ch!r}")
        if i:
            cols.append(torch.zeros(5, 1, dtype=torch.bool))
        cols.append(torch.tensor([[c == "#" for c in row] for row in _GLYPHS[ch]], dtype=torch.bool))
    mask = torch.cat(cols, dim=1)
    return mask.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def stamp(images: torch.Tensor, mask: torch.Tensor, row: int, col: int, value: int = 255) -> torch.Tensor:
    """Copies of uint8 ``images`` with ``value`` written where ``mask`` is set, its top-left
    corner at ``(row, col)`` (clipped to the image)."""
    out = images.clone()
    h, w = out.shape[-2:]
    mh, mw = min(mask.shape[0], h - row), min(mask.shape[1], w - col)
    if mh <= 0 or mw <= 0:
        raise AdvParamsError(f"a {tuple(mask.shape)} stamp at ({row}, {col}) misses {h}x{w} images")
    region = out[..., row : row + mh, col : col + mw]
    region[..., mask[:mh, :mw]] = value
    return out


def glyph_images(n: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    """``n`` uint8 images of one random digit each (random size, place and ink) on a dark
    background: out-of-distribution images for Zhang et al.'s "unrelated" watermark."""
    c, h, w = shape
    out = torch.zeros(n, c, h, w, dtype=torch.uint8)
    digits = "0123456789"
    for i in range(n):
        d = digits[int(torch.randint(0, 10, (1,), generator=generator))]
        scale = int(torch.randint(max(1, h // 10), max(2, h // 6) + 1, (1,), generator=generator))
        mask = text_mask(d, scale)
        row = int(torch.randint(0, max(1, h - mask.shape[0] + 1), (1,), generator=generator))
        col = int(torch.randint(0, max(1, w - mask.shape[1] + 1), (1,), generator=generator))
        ink = int(torch.randint(160, 256, (1,), generator=generator))
        out[i] = stamp(out[i : i + 1], mask, row, col, ink)[0]
    return out


def block_shuffle(images: torch.Tensor, blocks: int, permutation: torch.Tensor) -> torch.Tensor:
    """Cuts each image into a ``blocks x blocks`` grid (the edges that do not divide stay
    in place) and rearranges the cells by ``permutation`` (of ``blocks ** 2``)."""
    n, c, h, w = images.shape
    bh, bw = h // blocks, w // blocks
    if bh < 1 or bw < 1:
        raise AdvParamsError(f"{blocks}x{blocks} blocks do not fit {h}x{w} images")
    if sorted(permutation.tolist()) != list(range(blocks * blocks)):
        raise AdvParamsError("permutation must reorder every block exactly once")
    out = images.clone()
    core = images[..., : bh * blocks, : bw * blocks]
    cells = core.reshape(n, c, blocks, bh, blocks, bw).permute(0, 1, 2, 4, 3, 5).reshape(n, c, blocks * blocks, bh, bw)
    cells = cells[:, :, permutation]
    out[..., : bh * blocks, : bw * blocks] = (
        cells.reshape(n, c, blocks, blocks, bh, bw).permute(0, 1, 2, 4, 3, 5).reshape(n, c, bh * blocks, bw * blocks)
    )
    return out


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The name and module of the last ``nn.Linear`` in ``model`` (the classifier head)."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise AdvParamsError("the additional-class watermark needs a model whose last layer is an nn.Linear")
    return found[-1]


def with_extra_class(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """A copy of ``model`` whose last ``nn.Linear`` has one more output, the old outputs
    copied exactly; the new row is drawn at the scale of the old ones, its bias at the
    lowest old bias (the new class starts out rarely chosen)."""
    out = copy.deepcopy(model)
    name, head = last_linear(out)
    w, b = head.weight.detach(), head.bias.detach() if head.bias is not None else None
    new = nn.Linear(head.in_features, head.out_features + 1, bias=b is not None).to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight[:-1] = w
        row = torch.randn(head.in_features, generator=generator, dtype=torch.float64) * float(w.double().std())
        new.weight[-1] = row.to(device=w.device, dtype=w.dtype)
        if b is not None:
            new.bias[:-1] = b
            new.bias[-1] = b.min()
    parent = out
    *path, leaf = name.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, new)
    return out
