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
from advparams.files import integer, parse_json, string

MAGIC = b"ADVPARAMS-SEALED-KEY v1\n"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
# Caps on a sealed file's scrypt parameters, checked before any work: scrypt needs
# 128 * n * r bytes and time in proportion to n * r * p. The caps allow 4x the work this
# version writes (at most 128 MiB and about half a second on a 2-core machine).
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 2**17, 16, 4
MAX_SCRYPT_WORK = 4 * SCRYPT_N * SCRYPT_R * SCRYPT_P
MAX_HEADER_LINE = 4096

Passphrase = str | bytes
"""A passphrase: bytes as given, or text (encoded as UTF-8; characters that came from
undecodable bytes, as ``os.environ`` and ``sys.argv`` carry them, turn back into those bytes)."""


def passphrase_bytes(passphrase: Passphrase) -> bytes:
    """The bytes scrypt is given for ``passphrase``."""
    if isinstance(passphrase, bytes):
        return passphrase
    return passphrase.encode("utf-8", "surrogateescape")


def is_sealed(data: bytes) -> bool:
    """True when ``data`` is a sealed key file."""
    return data.startswith(MAGIC)


def _derive(passphrase: Passphrase, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase_bytes(passphrase))


def seal(plain: bytes, passphrase: Passphrase) -> bytes:
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


def unseal(data: bytes, passphrase: Passphrase) -> bytes:
    """Decrypts a sealed key file.

    Raises:
        PassphraseError: wrong passphrase, or the file was changed.
        KeyFileError: the file is not a sealed key or its header is corrupt.
    """
    if not is_sealed(data):
        raise KeyFileError("not a sealed key file")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_LINE)
    if end < 0:
        raise KeyFileError("sealed key file is truncated or its header is corrupt")
    header = parse_json(data[len(MAGIC) : end], what="sealed key file header", error=KeyFileError, max_depth=2)
    if not isinstance(header, dict) or header.get("cipher") != "AES-256-GCM" or header.get("kdf") != "scrypt":
        raise KeyFileError("sealed key file has an unsupported or corrupt header")
    n = integer(header.get("n"), what="sealed key scrypt n", lo=2, hi=MAX_SCRYPT_N, error=KeyFileError)
    r = integer(header.get("r"), what="sealed key scrypt r", lo=1, hi=MAX_SCRYPT_R, error=KeyFileError)
    p = integer(header.get("p"), what="sealed key scrypt p", lo=1, hi=MAX_SCRYPT_P, error=KeyFileError)
    if n & (n - 1) or n * r * p > MAX_SCRYPT_WORK:
        raise KeyFileError(
            f"sealed key file asks for scrypt n={n}, r={r}, p={p}: not a power of two or over the cap "
            f"(n*r*p at most {MAX_SCRYPT_WORK})"
        )
    try:
        salt = base64.b64decode(string(header.get("salt"), what="salt", max_len=64, error=KeyFileError), validate=True)
        nonce = base64.b64decode(
            string(header.get("nonce"), what="nonce", max_len=64, error=KeyFileError), validate=True
        )
    except ValueError:
        raise KeyFileError("sealed key file has a corrupt header (salt or nonce)") from None
    if len(nonce) != 12 or not 8 <= len(salt) <= 32:
        raise KeyFileError("sealed key file has a corrupt header (nonce or salt length)")
    head = data[: end + 1]
    try:
        return AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, data[end + 1 :], head)
    except InvalidTag:
        raise PassphraseError("wrong passphrase, or the sealed key file was tampered with") from None
