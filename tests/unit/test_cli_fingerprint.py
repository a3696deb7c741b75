"""``advparams fingerprint extract | verify`` end to end on synthetic data, and its error paths."""

from __future__ import annotations

import json
import os
import stat

import pytest

from advparams.cli import main
from tests.unit.cli_helpers import one_line_error, run


@pytest.fixture(scope="module")
def models(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The owner's model and three independently trained ones."""
    work = tmp_path_factory.mktemp("fpcli")
    paths = []
    for seed in range(4):
        out = work / f"model{seed}"
        argv = ["train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "2", "--seed", str(seed)]
        assert main([*argv, "--out", str(out), "--device", "cpu", "--json"]) == 0
        paths.append(out)
    return work, paths


@pytest.mark.parametrize("scheme", ["infip", "ipguard"])
def test_extract_then_verify(models, capsys, scheme) -> None:  # type: ignore[no-untyped-def]
    work, (owner, *others) = models
    fp = work / f"owner.{scheme}"
    sets = ["--set", "probes=16"] if scheme == "infip" else ["--set", "points=16", "--set", "steps=30"]
    code, out, _ = run(capsys, "fingerprint", "extract", owner, "--scheme", scheme, *sets, "--out", fp, "--json")
    assert code == 0
    s = json.loads(out)
    assert s["probes"] == 16 and s["self_score"] == pytest.approx(1.0) and "inputs" not in out
    assert stat.S_IMODE(os.stat(fp).st_mode) == 0o600
    code, out, _ = run(capsys, "fingerprint", "verify", owner, "--fingerprint", fp, "--null", *others[:2], "--json")
    v = json.loads(out)
    assert code == 0 and v["verified"] and v["score"] == pytest.approx(1.0) and len(v["null_scores"]) == 2
    code, out, _ = run(capsys, "fingerprint", "verify", others[2], "--fingerprint", fp, "--null", *others[:2])
    assert (code, "is a copy" in out) in ((0, True), (3, False))  # exit 0 verified, 3 not


def test_extract_refuses_to_overwrite_without_force(models, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, (owner, *_) = models
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    code, _, err = run(capsys, "fingerprint", "extract", owner, "--set", "probes=4", "--out", mine, "--force")
    assert code == 1 and err.startswith("advparams: error:") and mine.read_text() == "mine"
    fp = tmp_path / "a.fingerprint"
    assert run(capsys, "fingerprint", "extract", owner, "--set", "probes=4", "--out", fp)[0] == 0
    code, _, err = run(capsys, "fingerprint", "extract", owner, "--set", "probes=4", "--out", fp)
    assert code == 1 and "exists" in err
    assert run(capsys, "fingerprint", "extract", owner, "--set", "probes=4", "--out", fp, "--force")[0] == 0


def test_bad_inputs_are_one_error_line(models, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, (owner, a, b, _) = models
    garbage = tmp_path / "bad.fingerprint"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b"x" * 20)
    for argv in (
        ["fingerprint", "verify", owner, "--fingerprint", garbage, "--null", a, b],
        ["fingerprint", "verify", owner, "--fingerprint", tmp_path / "missing", "--null", a, b],
        ["fingerprint", "extract", owner, "--set", "probes=0", "--out", tmp_path / "x"],
        ["fingerprint", "extract", tmp_path / "no-model", "--out", tmp_path / "y"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("advparams: error:"), argv
    fp = tmp_path / "ok.fingerprint"
    assert run(capsys, "fingerprint", "extract", owner, "--set", "probes=4", "--out", fp)[0] == 0
    code, _, err = run(capsys, "fingerprint", "verify", owner, "--fingerprint", fp, "--null", a)
    assert code == 1 and "at least two" in err


def test_list_names_the_fingerprints(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)["fingerprints"]] == ["infip", "ipguard"]


@pytest.mark.parametrize("fpr", ["1e-300", "0", "-1", "1", "0.5", "nan", "inf", "1e-13"])
def test_verify_refuses_a_false_positive_rate_it_cannot_use(models, capsys, tmp_path, fpr) -> None:  # type: ignore[no-untyped-def]
    """Refused first, before any file is read (before: 1e-300 was an "unexpected StatisticsError")."""
    _, (owner, a, b, _) = models
    code, _, err = run(
        capsys, "fingerprint", "verify", owner, "--fingerprint", tmp_path / "missing", "--null", a, b, "--fpr", fpr
    )
    one_line_error(code, err, r"--fpr must be a false-positive rate in [1e-12, 0.5), got")


def test_extract_refuses_more_probes_than_images(models, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The synthetic training split holds 2,000 images: 2,001 probes were cut to 2,000 while
    the file recorded 2,001."""
    _, (owner, *_) = models
    out = tmp_path / "x.fingerprint"
    code, _, err = run(
        capsys, "fingerprint", "extract", owner, "--set", "probes=2001", "--set", "pool=3000", "--out", out
    )
    one_line_error(code, err, "probes=2001 is more than the 2000 images of synthetic")
    assert not out.exists()
    for seed in ("-1", str(2**63), "99999999999999999999999"):
        code, _, err = run(capsys, "fingerprint", "extract", owner, "--seed", seed, "--out", out)
        one_line_error(code, err, f"seed must be an integer in [0, 2**63 - 1], got {seed}")


def test_verify_refuses_probes_the_models_cannot_take_before_running_any(models, capsys, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A valid file of probes of another shape is refused from the checkpoints' model.json,
    before a model sees a probe (before: a 253 MiB file of one 8150x8150 probe took 6.2 GB
    and 50 s of forward passes before the model refused it)."""
    import torch

    from advparams.fingerprints import Fingerprint, save_fingerprint
    from advparams.models.lenet import LeNet5

    _, (owner, a, b, _) = models
    fp = Fingerprint(
        scheme="ipguard",
        inputs=torch.zeros(3, 1, 40, 40),
        labels=torch.zeros(3, dtype=torch.int64),
        maps=None,
        mean=(0.5,),
        std=(0.5,),
        num_classes=10,
        config={"points": 3},
    )
    path = save_fingerprint(fp, tmp_path / "big.fingerprint")
    seen: list[int] = []
    real = LeNet5.forward
    monkeypatch.setattr(LeNet5, "forward", lambda self, x: seen.append(x.shape[0]) or real(self, x))
    code, _, err = run(capsys, "fingerprint", "verify", owner, "--fingerprint", path, "--null", a, b)
    one_line_error(code, err, f"probes are 1x40x40 inputs, but the model in {owner} takes 1x16x16")
    assert seen == []


def test_extract_refuses_an_option_too_large_for_a_float(models, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, (owner, *_) = models
    code, _, err = run(
        capsys, "fingerprint", "extract", owner, "--scheme", "ipguard", "--set", f"k={10**400}", "--out", tmp_path / "x"
    )
    one_line_error(code, err, "k must be a finite number")


def test_the_input_shape_comes_from_model_json() -> None:
    """Arguments first, then the factory's defaults, then the data set; None when nothing says."""
    from advparams.cli.fingerprints import input_shape

    assert input_shape({"architecture": "lenet", "arguments": {"in_channels": 3, "input_size": 32}}) == (3, 32, 32)
    assert input_shape({"architecture": "lenet", "arguments": {}}) == (1, 28, 28)  # lenet's defaults
    assert input_shape({"architecture": "resnet18", "arguments": {"input_size": 16}}) == (3, 16, 16)
    unknown = {"architecture": "not-registered", "arguments": {}}
    assert input_shape(unknown) is None
    assert input_shape({**unknown, "dataset": "synthetic"}) == (1, 16, 16)
