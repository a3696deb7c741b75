"""Secret keys: the exact lock/unlock operations, the file format (:data:`FORMAT`: its
name, the versions it reads, its digest and size limit) and passphrase sealing."""

from advparams.keys.io import (
    FORMAT,
    KEY_FORMAT,
    is_key_file,
    key_from_bytes,
    key_is_sealed,
    key_metadata,
    key_to_bytes,
    load_key,
    save_key,
)
from advparams.keys.key import Key, KeyEntry, Shuffle, relock, unlock, unlock_

__all__ = [
    "FORMAT",
    "KEY_FORMAT",
    "Key",
    "KeyEntry",
    "is_key_file",
    "key_metadata",
    "key_from_bytes",
    "key_is_sealed",
    "key_to_bytes",
    "load_key",
    "relock",
    "save_key",
    "Shuffle",
    "unlock",
    "unlock_",
]
