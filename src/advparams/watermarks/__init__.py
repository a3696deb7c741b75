"""Passive protection: watermarks for ownership verification and per-user fingerprints.

Registered watermarks (:data:`WATERMARKS`): ``additional-class`` (Sun, Xue, Wang and Liu
2021; users' fingerprints hidden in the key images by LSB steganography) and the
baselines ``zhang-content``, ``zhang-noise``, ``zhang-unrelated`` (Zhang et al. 2018) and
``frontier-stitching`` (Le Merrer et al. 2019). Each has one verb, ``embed``; every
verification (:func:`verify`) decides at a threshold calibrated on null models for a
stated false-positive rate (:func:`calibrate_on`).

Example:
    >>> from advparams.watermarks import WATERMARKS
    >>> WATERMARKS.names()
    ['additional-class', 'frontier-stitching', 'zhang-content', 'zhang-noise', 'zhang-unrelated']
"""

from advparams.errors import UserTableError
from advparams.watermarks import additional_class, frontier, zhang  # noqa: E402,I001  (registers)
from advparams.watermarks.additional_class import authenticate_user, identify, issue  # noqa: E402
from advparams.watermarks.base import (
    WATERMARKS,
    Calibration,
    EmbedConfig,
    Verification,
    Watermark,
    Watermarked,
    WatermarkKey,
    binomial_tail,
    calibrate,
    calibrate_on,
    trace,
    verify,
)
from advparams.watermarks.keyfile import is_watermark_key_file, load_watermark_key, save_watermark_key  # noqa: E402
from advparams.watermarks.lsb import hide_bits, reveal_bits
from advparams.watermarks.users import Authentication, UserTable

__all__ = [
    "is_watermark_key_file",
    "WATERMARKS",
    "Authentication",
    "Calibration",
    "EmbedConfig",
    "UserTable",
    "UserTableError",
    "Verification",
    "Watermark",
    "WatermarkKey",
    "Watermarked",
    "additional_class",
    "authenticate_user",
    "binomial_tail",
    "calibrate",
    "calibrate_on",
    "frontier",
    "hide_bits",
    "identify",
    "issue",
    "load_watermark_key",
    "reveal_bits",
    "save_watermark_key",
    "trace",
    "verify",
    "zhang",
]
