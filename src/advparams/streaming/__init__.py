"""Checkpoints of any size: keys applied to Hugging Face folders tensor by tensor, without
loading the model (``docs/scale.md``)."""

from advparams.streaming.folders import (
    Streamed,
    folder_fingerprint,
    key_changes,
    lock_folder,
    stream_folder,
    streams,
    unlock_folder,
)
from advparams.streaming.shards import Shard, ShardWriter, read_shard

__all__ = [
    "Shard",
    "ShardWriter",
    "Streamed",
    "folder_fingerprint",
    "key_changes",
    "lock_folder",
    "read_shard",
    "stream_folder",
    "streams",
    "unlock_folder",
]
