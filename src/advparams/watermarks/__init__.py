"""Passive protection: watermarks for ownership verification and per-user fingerprints.

So far: LSB steganography (:mod:`advparams.watermarks.lsb`) and the table of users and
their fingerprints (:mod:`advparams.watermarks.users`), the parts of the additional-class
watermark that hide and authenticate a user's fingerprint in key images.
"""

from advparams.errors import UserTableError
from advparams.watermarks.lsb import hide_bits, reveal_bits
from advparams.watermarks.users import Authentication, UserTable

__all__ = ["Authentication", "UserTable", "UserTableError", "hide_bits", "reveal_bits"]
