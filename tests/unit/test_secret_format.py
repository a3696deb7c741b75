"""One format for every secret file: what SecretFormat writes, refuses and replaces, and
that the toolkit's five secret files are instances of it with distinct names and tags."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save as st_save

from advparams.backdoors.triggerfile import FORMAT as TRIGGER
from advparams.errors import AdvParamsError, OutputExistsError, TriggerFileError
from advparams.files import SecretFormat, tagged_digest
from advparams.fingerprints.fingerprintfile import FORMAT as FINGERPRINT
from advparams.keys.io import FORMAT as KEY
from advparams.tracing.queryfile import FORMAT as QUERIES
from advparams.version import __version__
from advparams.watermarks.keyfile import FORMAT as WATERMARK

NOTES = SecretFormat("advparams-notes", "2", "notes file", "trigger", TriggerFileError, reads=("1", "2"))
OTHER = SecretFormat("advparams-other", "1", "other file", "trigger", TriggerFileError)


def test_round_trip_adds_the_reserved_fields() -> None:
    data = NOTES.encode({"x": torch.arange(4)}, {"title": "demo"})
    meta, tensors = NOTES.decode(data)
    assert meta["format"] == "advparams-notes" and meta["version"] == "2" and meta["title"] == "demo"
    assert meta["advparams_version"] == __version__
    assert meta["digest"] == tagged_digest(b"advparams-notes-digest-v1\0", meta, tensors)
    assert tensors["x"].tolist() == [0, 1, 2, 3]
    assert NOTES.decode(NOTES.encode({}, {}, version="1"))[0]["version"] == "1"


def test_reserved_fields_are_the_format_s_own() -> None:
    for field in ("format", "version", "digest", "advparams_version"):
        with pytest.raises(ValueError, match="written by the format"):
            NOTES.encode({}, {field: "x"})


def _forged(meta: dict[str, str], tensors: dict[str, torch.Tensor], fmt: SecretFormat = NOTES) -> bytes:
    full = {"format": fmt.name, "version": fmt.version, **meta}
    full["digest"] = fmt.digest(full, tensors)
    return st_save(tensors, metadata=full)


def test_another_format_an_unread_version_and_an_edit_are_refused() -> None:
    with pytest.raises(TriggerFileError, match="not an advparams notes file"):
        NOTES.decode(OTHER.encode({}, {}))
    with pytest.raises(TriggerFileError, match="version '3' is not supported .*reads 1, 2"):
        NOTES.decode(NOTES.encode({}, {}, version="3"))
    raw = bytearray(NOTES.encode({"x": torch.arange(4)}, {"title": "demo"}))
    raw[-1] ^= 1
    with pytest.raises(TriggerFileError, match="digest mismatch"):
        NOTES.decode(bytes(raw))
    with pytest.raises(TriggerFileError, match="truncated"):
        NOTES.decode(bytes(raw[:-5]))
    assert NOTES.decode(_forged({"k": "v"}, {}))[0]["k"] == "v"


def test_the_check_sees_declared_tensors_before_any_is_copied() -> None:
    seen = []

    def check(meta: dict[str, str], specs: dict) -> None:
        seen.append({k: (s.dtype, s.shape) for k, s in specs.items()})
        raise TriggerFileError("refused from the header")

    with pytest.raises(TriggerFileError, match="refused from the header"):
        NOTES.decode(NOTES.encode({"x": torch.zeros(2, 3)}, {}), check=check)
    assert seen == [{"x": ("F32", (2, 3))}]


def test_write_is_private_and_force_replaces_only_its_own_format(tmp_path) -> None:
    path = tmp_path / "notes.safetensors"
    NOTES.write(path, NOTES.encode({}, {"n": "1"}))
    assert os.stat(path).st_mode & 0o777 == 0o600 and NOTES.is_file(path) and not OTHER.is_file(path)
    with pytest.raises(OutputExistsError):
        NOTES.write(path, NOTES.encode({}, {"n": "2"}))
    NOTES.write(path, NOTES.encode({}, {"n": "2"}), force=True)
    assert NOTES.decode(NOTES.read(path))[0]["n"] == "2"
    with pytest.raises(OutputExistsError):
        OTHER.write(path, OTHER.encode({}, {}), force=True)  # a notes file is not another's output
    assert NOTES.decode(NOTES.read(path))[0]["n"] == "2"


def test_an_unknown_size_limit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no size limit"):
        SecretFormat("advparams-x", "1", "x file", "no-such-limit", AdvParamsError)


def test_the_toolkit_s_secret_files_are_distinct_formats() -> None:
    formats = [KEY, WATERMARK, TRIGGER, FINGERPRINT, QUERIES]
    assert len({f.name for f in formats}) == len({f.tag for f in formats}) == len(formats)
    assert KEY.reads == ("1", "2", "3", "4", "5") and all(f.reads == ("1",) for f in formats[1:])
