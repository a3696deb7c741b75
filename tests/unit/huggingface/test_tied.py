"""Tied weights (an output layer sharing the input embedding) through a written folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from advparams.errors import CheckpointError
from advparams.huggingface.folder import load_hf_folder, write_hf_folder

transformers = pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")


@pytest.fixture()
def tied(tmp_path: Path) -> Path:
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "src")
    return tmp_path / "src"


def _names(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:  # type: ignore[no-untyped-call]
        return set(f.keys())


def test_a_change_to_a_tied_weight_is_written_once_and_stays_tied(tied: Path, tmp_path: Path) -> None:
    model, _ = load_hf_folder(tied)
    assert model.lm_head.weight is model.transformer.wte.weight
    with torch.no_grad():
        model.transformer.wte.weight[3, 5] += 1.0  # one value, seen by both layers
    (tmp_path / "out").mkdir()
    write_hf_folder(model, tmp_path / "out", tied)
    assert _names(tmp_path / "out") == _names(tied)  # the tie is written once, as the source has it
    again = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "out"), local_files_only=True)
    assert again.lm_head.weight.data_ptr() == again.transformer.wte.weight.data_ptr()
    assert torch.equal(again.transformer.wte.weight, model.transformer.wte.weight)


def test_a_tie_broken_in_memory_is_refused_not_lost(tied: Path, tmp_path: Path) -> None:
    model, _ = load_hf_folder(tied)
    model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.detach().clone())
    (tmp_path / "same").mkdir()
    write_hf_folder(model, tmp_path / "same", tied)  # untied but equal: nothing is lost
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0
    (tmp_path / "out").mkdir()
    with pytest.raises(CheckpointError, match="lm_head.weight is in none of the folder.s weight files .a weight tied"):
        write_hf_folder(model, tmp_path / "out", tied)
