"""Fingerprint files: round trip, owner-only, tamper and hostile files refused, --force rules."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors.torch import save as st_save

from advparams.errors import FingerprintFileError, OutputExistsError
from advparams.files import LIMITS
from advparams.fingerprints import FINGERPRINTS, load_fingerprint, save_fingerprint
from advparams.fingerprints.fingerprintfile import fingerprint_digest, fingerprint_from_bytes, fingerprint_to_bytes

from .conftest import fast


@pytest.fixture(scope="module")
def fps(trained):
    model, data = trained
    return {n: FINGERPRINTS.build(n, fast(n)).extract(model, data) for n in FINGERPRINTS.names()}


def test_round_trip_keeps_every_field(fps, tmp_path, fp_name) -> None:
    fp = fps[fp_name]
    path = save_fingerprint(fp, tmp_path / "owner.fingerprint")
    back = load_fingerprint(path)
    assert torch.equal(back.inputs, fp.inputs) and torch.equal(back.labels, fp.labels)
    assert (back.maps is None) == (fp.maps is None) and (fp.maps is None or torch.equal(back.maps, fp.maps))
    assert (back.scheme, back.mean, back.std, back.num_classes) == (fp.scheme, fp.mean, fp.std, fp.num_classes)
    assert back.model_fingerprint == fp.model_fingerprint and dict(back.config) == dict(fp.config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0x01
    return bytes(b)


def test_any_edit_of_a_tensor_is_refused(fps) -> None:
    data = fingerprint_to_bytes(fps["infip"])
    with pytest.raises(FingerprintFileError, match="digest mismatch"):
        fingerprint_from_bytes(_flip(data, len(data) - 5))


def _rewrite(fp, **meta_changes):
    """A file with edited metadata and a *valid* digest (a careful forger's file)."""
    raw = fingerprint_to_bytes(fp)
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + n])["__metadata__"]
    from safetensors.torch import load

    tensors = load(raw)
    tensors.update(meta_changes.pop("tensors", {}))
    meta.update(meta_changes)
    meta.pop("digest")
    meta["digest"] = fingerprint_digest(meta, tensors)
    return st_save(tensors, metadata=meta)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "advparams-watermark"}, "not an advparams fingerprint file"),
        ({"version": "9"}, "version"),
        ({"scheme": "nope"}, "unknown fingerprint"),
        ({"num_classes": "1"}, "num_classes"),
        ({"mean": "[0.5, 0.5]"}, "mean"),
        ({"std": "[0.0]"}, "std"),
        ({"config": json.dumps({"probes": -1})}, "corrupt"),
        ({"config": "[1]"}, "JSON object"),
    ],
)
def test_bad_metadata_is_one_clear_error(fps, change, message) -> None:
    with pytest.raises(FingerprintFileError, match=message):
        fingerprint_from_bytes(_rewrite(fps["infip"], **change))


def test_bad_tensors_are_refused_even_with_a_valid_digest(fps) -> None:
    fp = fps["infip"]
    with pytest.raises(FingerprintFileError, match="labels"):
        fingerprint_from_bytes(_rewrite(fp, tensors={"labels": torch.full_like(fp.labels, 99)}))
    with pytest.raises(FingerprintFileError, match="finite"):
        fingerprint_from_bytes(_rewrite(fp, tensors={"inputs": torch.full_like(fp.inputs, float("inf"))}))
    with pytest.raises(FingerprintFileError, match="unexpected or missing"):
        fingerprint_from_bytes(_rewrite(fps["ipguard"], tensors={"extra": torch.zeros(1)}))


def test_truncated_garbage_and_oversized_files_are_refused(fps, tmp_path, monkeypatch) -> None:
    data = fingerprint_to_bytes(fps["ipguard"])
    for blob in (data[:100], b"\x00" * 7, b"not a fingerprint at all"):
        with pytest.raises(FingerprintFileError):
            fingerprint_from_bytes(blob)
    path = tmp_path / "big.fingerprint"
    path.write_bytes(data)
    monkeypatch.setitem(LIMITS, "fingerprint", 64)
    with pytest.raises(FingerprintFileError, match="over the limit"):
        load_fingerprint(path)


def test_only_regular_files_are_read(tmp_path) -> None:
    with pytest.raises(FingerprintFileError, match="folder"):
        load_fingerprint(tmp_path)
    with pytest.raises(FingerprintFileError, match="does not exist"):
        load_fingerprint(tmp_path / "missing.fingerprint")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FingerprintFileError, match="not a regular file"):
        load_fingerprint(fifo)


def test_force_replaces_only_a_fingerprint_file(fps, tmp_path) -> None:
    fp = fps["ipguard"]
    path = save_fingerprint(fp, tmp_path / "a.fingerprint")
    with pytest.raises(OutputExistsError):
        save_fingerprint(fp, path)
    save_fingerprint(fps["infip"], path, force=True)
    assert load_fingerprint(path).scheme == "infip"
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(OutputExistsError):
        save_fingerprint(fp, other, force=True)
    assert other.read_text() == "mine"


@pytest.fixture
def no_tensor_copies(monkeypatch):  # type: ignore[no-untyped-def]
    """Fails the test if a file's tensors are copied out before its header was refused."""
    import safetensors.torch

    def refuse(data):  # type: ignore[no-untyped-def]
        raise AssertionError("the tensors were read before the header was checked")

    monkeypatch.setattr(safetensors.torch, "load", refuse)


def _ipguard_file(inputs: torch.Tensor, **tensors: torch.Tensor) -> bytes:
    """An IPGuard file of these probes (and other tensors) with a valid digest."""
    labels = tensors.pop("labels", torch.zeros(inputs.shape[0], dtype=torch.int64))
    all_tensors = {"inputs": inputs, "labels": labels, **tensors}
    meta = {"format": "advparams-fingerprint", "version": "1", "scheme": "ipguard", "config": '{"points": 1}'}
    meta |= {"num_classes": "10", "mean": "[0.5]", "std": "[0.5]", "model_fingerprint": ""}
    meta["digest"] = fingerprint_digest(meta, all_tensors)
    return st_save(all_tensors, metadata=meta)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (lambda: _ipguard_file(torch.zeros(1, 1, 1025, 4)), r"sides must be in \[1, 1024\]"),
        (lambda: _ipguard_file(torch.zeros(1, 2, 1)), r"inputs must be float32 \[N, C, H, W\]"),
        (lambda: _ipguard_file(torch.zeros(2, 1, 4, 4, dtype=torch.float64)), "float32"),
        (lambda: _ipguard_file(torch.zeros(2, 1, 4, 4), labels=torch.zeros(3, dtype=torch.int64)), r"int64 \[2\]"),
        (lambda: _ipguard_file(torch.zeros(2, 1, 4, 4), labels=torch.zeros(2, dtype=torch.int32)), "labels"),
        (lambda: _ipguard_file(torch.zeros(2, 1, 4, 4), maps=torch.zeros(2, 1, 4, 4)), "unexpected or missing"),
    ],
)
def test_declared_shapes_are_refused_before_the_tensors_are_read(no_tensor_copies, blob, message) -> None:  # type: ignore[no-untyped-def]
    """Before, a 253 MiB file of one 8150x8150 probe was read, copied and run through the
    model before anything refused it."""
    with pytest.raises(FingerprintFileError, match=message):
        fingerprint_from_bytes(blob())


def test_the_largest_valid_file_fits_the_size_cap() -> None:
    """Every file the probe limits allow can be read: probes and maps of at most
    MAX_PROBE_VALUES float32 values each, one int64 label per probe, the largest header."""
    from advparams.files import MAX_SAFETENSORS_HEADER
    from advparams.fingerprints.base import MAX_PROBE_VALUES, MAX_PROBES

    largest = 8 + MAX_SAFETENSORS_HEADER + 2 * 4 * MAX_PROBE_VALUES + 8 * MAX_PROBES
    assert largest <= LIMITS["fingerprint"] < 2 * largest
