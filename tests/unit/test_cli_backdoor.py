"""``advparams backdoor`` end to end on synthetic data, and its error paths."""

from __future__ import annotations

import json

import pytest
import torch

from advparams.backdoors import load_trigger
from advparams.checkpoint import load_checkpoint
from advparams.cli import main
from advparams.imaging import png_bytes, read_image
from tests.unit.cli_helpers import one_line_error, run


@pytest.fixture(scope="module")
def model(tmp_path_factory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("bdcli")
    path = work / "model"
    argv = ["train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "2", "--seed", "0"]
    assert main([*argv, "--out", str(path), "--device", "cpu", "--json"]) == 0
    return work, path


def test_implant_apply_evaluate(model, capsys) -> None:  # type: ignore[no-untyped-def]
    work, ckpt = model
    out, trig = work / "poisoned", work / "badnets.trigger"
    code, stdout, _ = run(
        capsys, "backdoor", "implant", ckpt, "--out", out, "--trigger", trig, "--epochs", "5", "--lr", "0.003",
        "--samples", "300", "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0
    s = json.loads(stdout)
    assert s["info"]["poisoned"] == 200 and s["asr"][0] > 0.8 and s["reference_asr"][0] < 0.5
    assert "pattern" not in stdout and "mask" not in stdout  # no trigger material in --json
    assert load_checkpoint(out).meta["record"]["backdoor"] == "badnets"
    assert load_trigger(trig).trigger.targets == (0,)

    # evaluate gives the same ASR on the same images, and the compression grid.
    code, stdout, _ = run(
        capsys, "backdoor", "evaluate", out, "--trigger", trig, "--reference", ckpt, "--samples", "300",
        "--compression", "--codecs", "jpeg", "--qualities", "30", "90", "--json",
    )  # fmt: skip
    e = json.loads(stdout)
    assert code == 0 and e["asr"] == s["asr"] and set(e["compression"]["jpeg"]) == {"30", "90"}
    code, stdout, _ = run(capsys, "backdoor", "evaluate", out, "--trigger", trig, "--samples", "100")
    assert code == 0 and "trigger 0 -> target 0: ASR" in stdout

    # apply: to an image file and to data set images; PNG out, only the patch changed.
    img = torch.full((1, 16, 16), 90, dtype=torch.uint8)
    (work / "a.png").write_bytes(png_bytes(img))
    dest = work / "stamped"
    code, stdout, _ = run(
        capsys, "backdoor", "apply", work / "a.png", "--trigger", trig, "--out", dest, "--dataset", "synthetic",
        "--count", "2", "--json",
    )  # fmt: skip
    assert code == 0 and len(json.loads(stdout)["images"]) == 3
    first = sorted(dest.glob("*.png"))[-1]
    stamped = read_image(first, 1)
    assert int((stamped != img).sum()) == 9  # the 3x3 patch, nothing else
    code, _, err = run(capsys, "backdoor", "apply", work / "a.png", "--trigger", trig, "--out", dest)
    one_line_error(code, err, "exists")


def test_errors_are_one_line(model, capsys) -> None:  # type: ignore[no-untyped-def]
    work, ckpt = model
    (work / "fake.trigger").write_bytes(b"\x00" * 64)
    code, _, err = run(capsys, "backdoor", "evaluate", ckpt, "--trigger", work / "fake.trigger")
    one_line_error(code, err, "trigger file")
    code, _, err = run(capsys, "backdoor", "evaluate", ckpt, "--trigger", work / "missing.trigger")
    one_line_error(code, err, "missing.trigger")
    code, _, err = run(
        capsys, "backdoor", "implant", ckpt, "--out", work / "x", "--trigger", work / "x.trigger",
        "--set", "poison_rate=2", "--device", "cpu",
    )  # fmt: skip
    one_line_error(code, err, "poison_rate")
    (work / "notes.txt").write_text("mine")
    code, _, err = run(
        capsys, "backdoor", "implant", ckpt, "--out", work / "y", "--trigger", work / "notes.txt", "--force",
    )  # fmt: skip
    one_line_error(code, err, "notes.txt")
    assert (work / "notes.txt").read_text() == "mine"
    (work / "bomb.png").write_bytes(b"not an image")
    trig = work / "t.trigger"
    from advparams.backdoors import BACKDOORS, save_trigger

    save_trigger(BACKDOORS.build("dct", {}).make_trigger((3, 16, 16), 10, torch.Generator()), trig)
    code, _, err = run(capsys, "backdoor", "apply", work / "bomb.png", "--trigger", trig, "--out", work / "z")
    one_line_error(code, err, "not an image")
    assert not (work / "z").exists()
    code, _, err = run(capsys, "backdoor", "evaluate", ckpt, "--trigger", trig, "--samples", "50")
    one_line_error(code, err, "3-channel")


@pytest.fixture(scope="module")
def grey_trigger(model):  # type: ignore[no-untyped-def]
    from advparams.backdoors import BACKDOORS, save_trigger

    work, _ = model
    path = work / "grey.trigger"
    save_trigger(BACKDOORS.build("badnets", {}).make_trigger((1, 16, 16), 10, torch.Generator()), path, force=True)
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--samples", "0"], "--samples must be an integer in [1, 1000000], got 0"),
        (["--samples", "-5"], "--samples must be an integer in [1, 1000000], got -5"),
        (["--samples", "501"], "--samples 501 is more than the 500 test images of synthetic"),
        (["--compression", "--qualities", "50", "0"], "--qualities must be an integer in [1, 95], got 0"),
        (["--compression", "--qualities", "96"], "--qualities must be an integer in [1, 95], got 96"),
        (
            ["--qualities", "30"],
            "--codecs and --qualities set the compression grid: they take effect with --compression",
        ),
        (["--codecs", "jpeg"], "they take effect with --compression"),
    ],
)
def test_evaluate_refuses_counts_and_qualities_out_of_range(model, grey_trigger, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    """Before: --samples 0 and -5 were "unexpected" errors (a bug, said the CLI), 501 was cut to 500."""
    _, ckpt = model
    code, _, err = run(capsys, "backdoor", "evaluate", ckpt, "--trigger", grey_trigger, *argv)
    one_line_error(code, err, message)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "synthetic", "--count", "-5"], "--count must be an integer in [1, 1000000], got -5"),
        (["--dataset", "synthetic", "--count", "0"], "--count must be an integer in [1, 1000000], got 0"),
        (["--dataset", "synthetic", "--count", "501"], "--count 501 is more than the 500 images of synthetic"),
        (["--count", "3"], "--count takes images from --dataset"),
        (["--dataset", "synthetic", "--index", "1"], "--index must be a sub-trigger in [0, 0]"),
        (["--dataset", "synthetic", "--index", "-1"], "--index must be a sub-trigger in [0, 0]"),
    ],
)
def test_apply_refuses_counts_out_of_range(model, grey_trigger, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    work, _ = model
    out = work / "never"
    code, _, err = run(capsys, "backdoor", "apply", "--trigger", grey_trigger, "--out", out, *argv)
    one_line_error(code, err, message)
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "--epochs must be an integer in [1, 10000], got 0"),
        (["--batch-size", "-1"], "--batch-size must be an integer in [1, 1048576], got -1"),
        (["--lr", "nan"], "--lr must be a finite number in (0, 10], got nan"),
        (["--lr", "0"], "--lr must be a finite number in (0, 10], got 0.0"),
        (["--seed", str(2**63)], f"--seed must be an integer in [0, {2**63 - 1}], got {2**63}"),
        (["--set", "seed=-3"], f"backdoor option seed must be an integer in [0, {2**63 - 1}], got -3"),
        (["--samples", "0"], "--samples must be an integer in [1, 1000000], got 0"),
        (["--samples", "501"], "--samples 501 is more than the 500 test images of synthetic"),
        (["--samples", "100", "--no-eval"], "--samples sets how many test images are measured: it has no effect"),
    ],
)
def test_implant_refuses_options_out_of_range_before_training(model, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    """Before: a huge --seed was an "unexpected ValueError", --samples 0 failed after training."""
    work, ckpt = model
    out = work / "never-implanted"
    code, _, err = run(
        capsys, "backdoor", "implant", ckpt, "--out", out, "--trigger", work / "never.trigger", "--device", "cpu", *argv
    )
    one_line_error(code, err, message)
    assert not out.exists()
