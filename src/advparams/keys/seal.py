"""Passphrase sealing of key files: scrypt key derivation and AES-256-GCM.

Sealed file layout (version 1)::

    ADVPARAMS-SEALED-KEY v1\\n
    {"cipher": "AES-256-GCM", "kdf": "scrypt", "n": 32768, "r": 8, "p": 1,
     "salt": "<base64, 16 bytes>", "nonce": "<base64, 12 bytes>"}\\n
    <ciphertext of the plain key file, with the 16-byte GCM tag>

The magic line and the header line are authenticated as associated data, so any change
to the file, or a wrong passphrase, fails the tag check.
"""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from advparams.errors import KeyFileError, PassphraseError

MAGIC = b"ADVPARAMS-SEALED-KEY v1\n"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MAX_SCRYPT_N = 2**20  # refuse headers that would make unsealing absurdly slow


def is_sealed(data: bytes) -> bool:
    """True when ``data`` is a sealed key file."""
    return data.startswith(MAGIC)


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal(plain: bytes, passphrase: str) -> bytes:
    """Encrypts and authenticates ``plain`` under ``passphrase``."""
    if not passphrase:
        raise PassphraseError("the passphrase is empty")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {
        "cipher": "AES-256-GCM",
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(),
        "nonce": base64.b64encode(nonce).decode(),
    }
    head = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return head + AESGCM(key).encrypt(nonce, plain, head)


def unseal(data: bytes, passphrase: str) -> bytes:
    """Decrypts a sealed key file.

    Raises:
        PassphraseError: wrong passphrase, or the file was changed.
        KeyFileError: the file is not a sealed key or its header is corrupt.
    """
    if not is_sealed(data):
        raise KeyFileError("not a sealed key file")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise KeyFileError("sealed key file is truncated (no header)")
    try:
        header = json.loads(data[len(MAGIC) : end])
        salt = base64.b64decode(header["salt"], validate=True)
        nonce = base64.b64decode(header["nonce"], validate=True)
        n, r, p = int(header["n"]), int(header["r"]), int(header["p"])
        ok = header.get("cipher") == "AES-256-GCM" and header.get("kdf") == "scrypt"
    except (ValueError, KeyError, TypeError):
        raise KeyFileError("sealed key file has a corrupt header") from None
    if not ok or not (2 <= n <= MAX_SCRYPT_N) or n & (n - 1) or not (1 <= r <= 32) or not (1 <= p <= 16):
        raise KeyFileError("sealed key file has an unsupported or corrupt header")
    if len(nonce) != 12:
        raise KeyFileError("sealed key file has a corrupt header (nonce)")
    head = data[: end + 1]
    try:
        return AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, data[end + 1 :], head)
    except InvalidTag:
        raise PassphraseError("wrong passphrase, or the sealed key file was tampered with") from None
