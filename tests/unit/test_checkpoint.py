import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.errors import CheckpointError, OutputExistsError, UnknownNameError
from advparams.models import build_model
from advparams.testing import state_equal


@pytest.fixture
def ckpt(tmp_path):
    model = build_model("lenet", {"input_size": 16}, seed=0)
    path = save_checkpoint(
        model, tmp_path / "c", architecture="lenet", arguments={"input_size": 16}, dataset="synthetic"
    )
    return model, path


def test_round_trip(ckpt) -> None:
    model, path = ckpt
    loaded = load_checkpoint(path)
    assert state_equal(loaded.model, model) and loaded.architecture == "lenet" and loaded.dataset == "synthetic"
    meta = json.loads((path / "model.json").read_text())
    assert meta["format"] == "advparams-checkpoint" and meta["num_parameters"] > 0 and meta["locked"] is False


def test_half_precision_round_trip(tmp_path) -> None:
    model = build_model("vgg", {"input_size": 16, "width": 4}, seed=0).to(torch.bfloat16)
    save_checkpoint(model, tmp_path / "c", architecture="vgg", arguments={"input_size": 16, "width": 4})
    loaded = load_checkpoint(tmp_path / "c")
    assert state_equal(loaded.model, model)


def test_no_overwrite_without_force(ckpt) -> None:
    model, path = ckpt
    before = (path / "model.safetensors").read_bytes()
    with pytest.raises(OutputExistsError):
        save_checkpoint(
            build_model("lenet", {"input_size": 16}, seed=1), path, architecture="lenet", arguments={"input_size": 16}
        )
    assert (path / "model.safetensors").read_bytes() == before


def test_edited_weights_detected(ckpt) -> None:
    _, path = ckpt
    state = load_file(str(path / "model.safetensors"))
    state["features.0.weight"][0, 0, 0, 0] += 1e-3
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_checkpoint(path)


def test_truncated_weights(ckpt) -> None:
    _, path = ckpt
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda m: m.update(architecture="alexnet"), "unknown model"),
        (lambda m: m.update(version=99), "version"),
        (lambda m: m.update(arguments={"input_size": 28}), "does not fit|the model needs|belong to another model"),
        (lambda m: m.pop("fingerprint"), "lacks"),
    ],
)
def test_bad_description(ckpt, edit, match) -> None:
    _, path = ckpt
    meta = json.loads((path / "model.json").read_text())
    edit(meta)
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises((CheckpointError, UnknownNameError), match=match):
        load_checkpoint(path)


def test_missing_and_corrupt_json(ckpt, tmp_path) -> None:
    _, path = ckpt
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_checkpoint(path / "model.json")
    (path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    (path / "model.json").unlink()
    with pytest.raises(CheckpointError, match="no model.json"):
        load_checkpoint(path)
