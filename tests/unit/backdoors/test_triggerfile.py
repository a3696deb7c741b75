"""Trigger files: round trips for every backdoor's trigger, tampering refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from advparams.backdoors import BACKDOORS, is_trigger_file, load_trigger, save_trigger
from advparams.backdoors.triggerfile import trigger_digest, trigger_from_bytes
from advparams.errors import OutputExistsError, TriggerFileError
from advparams.files import safetensors_metadata


def _trigger(name: str, channels: int):  # type: ignore[no-untyped-def]
    bd = BACKDOORS.build(name, dict(BACKDOORS.get(name).tiny))
    return bd, bd.make_trigger((channels, 16, 16), 10, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("channels", [1, 3])
def test_every_trigger_round_trips(backdoor_name: str, channels: int, tmp_path: Path) -> None:
    bd, trig = _trigger(backdoor_name, channels)
    path = save_trigger(trig, tmp_path / "t.trigger", backdoor=backdoor_name, config=bd.config_dict())
    assert is_trigger_file(path)
    back = load_trigger(path)
    assert back.backdoor == backdoor_name and back.config == json.loads(json.dumps(bd.config_dict()))
    assert type(back.trigger) is type(trig) and back.trigger.targets == trig.targets
    assert back.trigger.params() == trig.params()
    x = torch.randint(0, 256, (5, channels, 16, 16), dtype=torch.int64, generator=torch.Generator()).to(torch.uint8)
    for i in range(len(trig)):
        assert torch.equal(back.trigger.apply(x, i), trig.apply(x, i))


def _resave(data: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    """The file with its metadata edited as an attacker would: digest recomputed."""
    meta = safetensors_metadata(data, what="t", error=TriggerFileError)
    tensors = st_load(data)
    edit(meta, tensors)
    meta["digest"] = trigger_digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def test_tampering_is_refused(tmp_path: Path) -> None:
    _, trig = _trigger("badnets", 3)
    path = save_trigger(trig, tmp_path / "t.trigger")
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[-1] ^= 0x01  # one bit of the pattern
    with pytest.raises(TriggerFileError, match="digest mismatch"):
        trigger_from_bytes(bytes(flipped))
    with pytest.raises(TriggerFileError, match="truncated|corrupt"):
        trigger_from_bytes(data[:-10])
    # Edits with a recomputed digest still meet the field checks.
    cases = [
        (lambda m, t: m.update(targets="[-1]"), "targets"),
        (lambda m, t: m.update(targets='"x"'), "targets"),
        (lambda m, t: m.update(channels="2"), "channels"),
        (lambda m, t: m.update(kind="warp"), "unknown kind"),
        (lambda m, t: m.update(params='{"row": 1e400}'), "corrupt|overflow|number"),
        (lambda m, t: m.update(params='{"row": true, "col": 0}'), "row"),
        (lambda m, t: t.update(mask=torch.full((3, 3), 2, dtype=torch.uint8)), "0/1"),
        (lambda m, t: t.pop("mask"), "pattern and mask"),
        (lambda m, t: m.update(version="9"), "version"),
        (lambda m, t: m.update(format="advparams-watermark"), "not an advparams trigger"),
        (lambda m, t: m.update(params="[" * 100 + "]" * 100), "nested too deeply"),
    ]
    for edit, message in cases:
        with pytest.raises(TriggerFileError, match=message):
            trigger_from_bytes(_resave(data, edit))


def test_dct_fields_are_checked() -> None:
    _, trig = _trigger("dct", 3)
    data = __import__("advparams.backdoors.triggerfile", fromlist=["x"]).trigger_to_bytes(trig)

    def bad_position(m, t):  # type: ignore[no-untyped-def]
        p = json.loads(m["params"])
        p["positions"][0][0] = [9, 0]
        m["params"] = json.dumps(p)

    def bad_channel(m, t):  # type: ignore[no-untyped-def]
        p = json.loads(m["params"])
        p["channel_of"][0] = 5
        m["params"] = json.dumps(p)

    for edit in (bad_position, bad_channel, lambda m, t: m.update(params="{}")):
        with pytest.raises(TriggerFileError):
            trigger_from_bytes(_resave(data, edit))


def test_saving_never_replaces_other_files(tmp_path: Path) -> None:
    _, trig = _trigger("blend", 1)
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(OutputExistsError):
        save_trigger(trig, other)
    with pytest.raises(OutputExistsError):
        save_trigger(trig, other, force=True)
    assert other.read_text() == "mine"
    path = save_trigger(trig, tmp_path / "t.trigger")
    with pytest.raises(OutputExistsError):
        save_trigger(trig, path)
    save_trigger(trig, path, force=True)  # a trigger file may be replaced with --force
    with pytest.raises(TriggerFileError, match="is a folder"):
        load_trigger(tmp_path)
