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


def _forged(meta: dict, tensors: dict) -> bytes:
    """A trigger file with these fields and tensors and a valid digest (a careful forger's)."""
    base = {"format": "advparams-trigger", "version": "1", "kind": "patch", "targets": "[0]", "channels": "1"}
    full = {**base, "params": '{"row": -1, "col": -1}', "backdoor": "", "config": "{}", **meta}
    full["digest"] = trigger_digest(full, tensors)
    return st_save(tensors, metadata=full)


PATCH = {"pattern": torch.zeros(1, 3, 3, dtype=torch.uint8), "mask": torch.ones(3, 3, dtype=torch.uint8)}


@pytest.fixture
def no_tensor_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fails the test if a trigger file's tensors are copied out (``safetensors.torch.load``)
    and records the length of every JSON text parsed."""
    import json as _json

    import safetensors.torch

    from advparams.files import reading

    def refuse(data: bytes) -> None:
        raise AssertionError("the tensors were read before the header was checked")

    parsed: list[int] = []
    real = _json.loads

    def counting(text, **kw):  # type: ignore[no-untyped-def]
        parsed.append(len(text))
        return real(text, **kw)

    monkeypatch.setattr(safetensors.torch, "load", refuse)
    monkeypatch.setattr(reading.json, "loads", counting)
    return parsed


def test_millions_of_targets_are_refused_before_they_are_parsed(no_tensor_copies: list[int]) -> None:
    """The value cap is counted on the text: seven million targets (14 MB of header) would
    otherwise become seven million Python integers (811 MiB) before the cap refused them."""
    data = _forged({"targets": json.dumps([0] * 2_000_000, separators=(",", ":"))}, PATCH)
    with pytest.raises(TriggerFileError, match="targets.*more than 1001 values"):
        trigger_from_bytes(data)
    assert len(no_tensor_copies) == 1  # the header was parsed (the field is a string in it); the field never was


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"pattern": torch.zeros(1, 3, 3), "mask": PATCH["mask"]}, "F32"),  # float pattern
        ({"pattern": torch.zeros(3, 3, 3, dtype=torch.uint8), "mask": PATCH["mask"]}, r"\[1, h, w\]"),  # channels
        ({"pattern": torch.zeros(1, 1, 5000, dtype=torch.uint8), "mask": PATCH["mask"]}, "4096"),  # side
        ({"pattern": PATCH["pattern"], "mask": torch.ones(1, 3, 3, dtype=torch.uint8)}, "mask"),  # 3-D mask
        ({**PATCH, "extra": torch.zeros(1, dtype=torch.uint8)}, "extra"),
    ],
)
def test_declared_tensors_are_checked_before_they_are_read(no_tensor_copies, tensors, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TriggerFileError, match=message):
        trigger_from_bytes(_forged({}, tensors))


def test_field_caps_are_counted_before_parsing(no_tensor_copies: list[int]) -> None:
    from advparams.backdoors.triggerfile import MAX_CONFIG_VALUES, MAX_PARAMS_VALUES

    for field, cap in (("params", MAX_PARAMS_VALUES), ("config", MAX_CONFIG_VALUES)):
        big = json.dumps({"x": [0] * (cap + 1)})
        with pytest.raises(TriggerFileError, match=f"{field}.*more than {cap} values"):
            trigger_from_bytes(_forged({field: big}, PATCH))


def test_dct_coefficients_are_distinct_and_payloads_bounded() -> None:
    from advparams.backdoors.triggerfile import MAX_PAYLOAD_BITS

    params = {"channel_of": [0], "positions": [[[1, 2], [3, 4]]], "payloads": [[1, 0]], "magnitude": 20.0}
    params |= {"block": 8, "colour_space": "rgb"}
    ok = trigger_from_bytes(_forged({"kind": "dct", "channels": "3", "params": json.dumps(params)}, {}))
    assert ok.trigger.kind == "dct"
    twice = params | {"positions": [[[1, 2], [1, 2]]]}
    with pytest.raises(TriggerFileError, match="coefficient twice"):
        trigger_from_bytes(_forged({"kind": "dct", "channels": "3", "params": json.dumps(twice)}, {}))
    long = params | {"payloads": [[1] * (MAX_PAYLOAD_BITS + 1)]}
    with pytest.raises(TriggerFileError, match="payload bits"):
        trigger_from_bytes(_forged({"kind": "dct", "channels": "3", "params": json.dumps(long)}, {}))
