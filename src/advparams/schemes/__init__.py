"""Active protection: schemes that lock a model so that it is useless without its key."""

from advparams.schemes.advparams import AdvParams, AdvParamsConfig  # noqa: I001  (registers)
from advparams.schemes.base import SCHEMES, LockProgress, LockReport, LockResult, Scheme


def list_schemes() -> list[str]:
    """Names of the registered schemes."""
    return SCHEMES.names()


__all__ = [
    "SCHEMES",
    "AdvParams",
    "AdvParamsConfig",
    "LockProgress",
    "LockReport",
    "LockResult",
    "Scheme",
    "list_schemes",
]
