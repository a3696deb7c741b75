"""The one place where library code touches torch's global generator.

PyTorch module constructors and ``reset_parameters()`` draw from the global generator and
take no ``torch.Generator``. To initialise a module reproducibly without changing the
caller's random state, library code draws under :func:`isolated_seed`: the global state
is forked, seeded, and restored on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch


@contextlib.contextmanager
def isolated_seed(seed: int, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """Seeds torch's global CPU generator with ``seed`` inside the block and restores the
    caller's state afterwards. ``devices`` (CUDA devices) are forked as well; without
    them only the CPU generator is restored.

    Example:
        >>> before = torch.random.get_rng_state()
        >>> with isolated_seed(0):
        ...     a = torch.rand(1)
        >>> with isolated_seed(0):
        ...     b = torch.rand(1)
        >>> bool(torch.equal(a, b)), bool(torch.equal(before, torch.random.get_rng_state()))
        (True, True)
    """
    with torch.random.fork_rng(devices=list(devices)):
        torch.manual_seed(seed)
        yield
