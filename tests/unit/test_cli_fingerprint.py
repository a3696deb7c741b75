"""``advparams fingerprint extract | verify`` end to end on synthetic data, and its error paths."""

from __future__ import annotations

import json
import os
import stat

import pytest

from advparams.cli import main
from tests.unit.cli_helpers import run


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
