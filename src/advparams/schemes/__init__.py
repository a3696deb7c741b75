"""Active protection: schemes that lock a model so that it is useless without its key.

Registered: ``advparams`` (the paper's method) and three baselines measured under the
same attacks: ``random`` (the floor), ``sfge`` (one gradient-sign step per layer) and
``nnsplitter`` (window-weight obfuscation in important filters, without RL); and
``signflip`` and ``hardened`` (a keyed shuffle of every tensor), the hardened designs
of docs/hardened.md.
"""

from advparams.schemes.base import SCHEMES, LockProgress, LockReport, LockResult, Scheme  # noqa: I001
from advparams.schemes.locking import LockSetup, ParameterScheme, Search
from advparams.schemes.advparams import AdvParams, AdvParamsConfig  # (registers)
from advparams.schemes.random import RandomPerturbation, RandomPerturbationConfig
from advparams.schemes.sfge import SFGE, SFGEConfig
from advparams.schemes.nnsplitter import NNSplitter, NNSplitterConfig
from advparams.schemes.signflip import SignFlip, SignFlipConfig
from advparams.schemes.hardened import Hardened, HardenedConfig


def list_schemes() -> list[str]:
    """Names of the registered schemes."""
    return SCHEMES.names()


__all__ = [
    "SCHEMES",
    "SFGE",
    "AdvParams",
    "AdvParamsConfig",
    "Hardened",
    "HardenedConfig",
    "LockProgress",
    "LockReport",
    "LockResult",
    "LockSetup",
    "NNSplitter",
    "NNSplitterConfig",
    "ParameterScheme",
    "RandomPerturbation",
    "RandomPerturbationConfig",
    "SFGEConfig",
    "Scheme",
    "Search",
    "SignFlip",
    "SignFlipConfig",
    "list_schemes",
]
