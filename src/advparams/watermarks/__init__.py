"""Passive protection: watermarks for ownership verification and per-user fingerprints.

So far (issue 5, in progress): LSB steganography (:mod:`advparams.watermarks.lsb`), the
table of users and their fingerprints (:mod:`advparams.watermarks.users`), and decision
thresholds calibrated on null models for a stated false-positive rate
(:mod:`advparams.watermarks.base`).
"""

from advparams.errors import UserTableError
from advparams.watermarks.base import Calibration, Verification, binomial_tail, calibrate
from advparams.watermarks.lsb import hide_bits, reveal_bits
from advparams.watermarks.users import Authentication, UserTable

__all__ = [
    "Authentication",
    "Calibration",
    "UserTable",
    "UserTableError",
    "Verification",
    "binomial_tail",
    "calibrate",
    "hide_bits",
    "reveal_bits",
]
