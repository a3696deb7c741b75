"""Backdoor attacks: what a poisoned model can do, and whether its trigger survives.

Registered backdoors (:data:`BACKDOORS`), each with one verb, ``implant(model, data)``,
that returns a :class:`Backdoored` (the backdoored copy, its :class:`Trigger`, facts):

* ``badnets`` (Gu et al. 2017) and ``blend`` (Chen et al. 2017), the baselines;
* ``dct``: the DCT-steganography multi-channel backdoor (Xue et al. 2022), N-to-N or
  N-to-One;
* ``compression-resistant``: feature-consistency training against JPEG, JPEG 2000 and
  WEBP (Xue et al. 2022);
* ``ptb``: physical transformations for backdoors (Xue et al. 2022).

Triggers are objects of their own (apply them to any uint8 batch of their shape) and are
saved as pickle-free files (:func:`save_trigger`, :func:`load_trigger`). The measures
are in :mod:`advparams.metrics.backdoor`, the codecs and transformations in
:mod:`advparams.imaging`.

Example:
    >>> from advparams.backdoors import BACKDOORS
    >>> BACKDOORS.names()
    ['badnets', 'blend', 'compression-resistant', 'dct', 'ptb']
"""

from advparams.backdoors import badnets, blend, compression, dct, ptb  # noqa: E402,F401,I001  (registers)
from advparams.backdoors.base import (
    BACKDOORS,
    Backdoor,
    Backdoored,
    BackdoorOptions,
    PoisonPlan,
    Poisoned,
    apply_each,
    implant_from_seed,
    normalise,
    poison_count,
    poison_plan,
)
from advparams.backdoors.triggerfile import TriggerFile, is_trigger_file, load_trigger, save_trigger  # noqa: E402
from advparams.backdoors.triggers import TRIGGERS, BlendTrigger, DCTTrigger, PatchTrigger, Trigger  # noqa: E402

__all__ = [
    "BACKDOORS",
    "TRIGGERS",
    "Backdoor",
    "BackdoorOptions",
    "Backdoored",
    "BlendTrigger",
    "DCTTrigger",
    "PatchTrigger",
    "PoisonPlan",
    "Poisoned",
    "Trigger",
    "TriggerFile",
    "apply_each",
    "badnets",
    "blend",
    "compression",
    "dct",
    "implant_from_seed",
    "is_trigger_file",
    "load_trigger",
    "normalise",
    "poison_count",
    "poison_plan",
    "ptb",
    "save_trigger",
]
