"""Secret keys: the exact lock/unlock operations, the file format and passphrase sealing."""

from advparams.keys.io import (
    KEY_FORMAT,
    KEY_VERSION,
    is_key_file,
    key_from_bytes,
    key_is_sealed,
    key_metadata,
    key_to_bytes,
    load_key,
    save_key,
)
from advparams.keys.key import Key, KeyEntry, Shuffle, relock, unlock

__all__ = [
    "KEY_FORMAT",
    "KEY_VERSION",
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
]
