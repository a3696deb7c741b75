"""The CLI end to end on synthetic data, and every error path: one line, non-zero exit."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.checkpoint import load_checkpoint
from advparams.cli import main
from advparams.schemes import SCHEMES
from advparams.testing import state_equal
from tests.unit.cli_helpers import run


def assert_one_line_error(code, err, match):
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("advparams: error: "), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained_ckpt(workdir):
    path = workdir / "model"
    assert (
        main(
            [
                "train",
                "--model",
                "lenet",
                "--dataset",
                "synthetic",
                "--epochs",
                "3",
                "--out",
                str(path),
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    return path


@pytest.fixture(scope="module")
def locked(workdir, trained_ckpt):
    out, key = workdir / "locked", workdir / "key.safetensors"
    assert main(["lock", str(trained_ckpt), "--out", str(out), "--key", str(key), "--device", "cpu"]) == 0
    return out, key


def test_train_json(capsys, workdir) -> None:
    code, out, _ = run(
        capsys,
        "train",
        "--model",
        "lenet",
        "--dataset",
        "synthetic",
        "--epochs",
        "2",
        "--out",
        workdir / "t2",
        "--json",
        "--set",
        "input_size=16",
    )
    summary = json.loads(out)
    assert code == 0 and summary["command"] == "train" and summary["accuracy"] > 0.5
    ckpt = load_checkpoint(workdir / "t2")
    assert ckpt.architecture == "lenet"
    # what a rerun needs to train the same model: the seed and the CPU's thread count
    assert ckpt.meta["record"]["torch_threads"] == torch.get_num_threads() and ckpt.meta["record"]["seed"] == 0


def test_lock_unlock_round_trip_json(capsys, workdir, trained_ckpt) -> None:
    code, out, _ = run(
        capsys,
        "lock",
        trained_ckpt,
        "--out",
        workdir / "l1",
        "--key",
        workdir / "k1",
        "--json",
        "--set",
        "max_params=40",
    )
    s = json.loads(out)
    assert code == 0 and s["params_changed"] <= 40 and s["accuracy_locked"] < s["accuracy_before"]
    for field in ("accuracy_before", "accuracy_locked", "params_changed", "proportion_percent", "seconds"):
        assert field in s
    assert s["proportion_percent"] == pytest.approx(100 * s["params_changed"] / s["params_total"], rel=1e-5)
    code, out, _ = run(
        capsys, "unlock", workdir / "l1", "--key", workdir / "k1", "--out", workdir / "r1", "--eval", "--json"
    )
    u = json.loads(out)
    assert code == 0 and u["exact"] is True and u["accuracy_unlocked"] == pytest.approx(s["accuracy_before"])
    assert state_equal(load_checkpoint(workdir / "r1").model, load_checkpoint(trained_ckpt).model)
    code, out, _ = run(capsys, "evaluate", workdir / "l1", "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(s["accuracy_locked"])


def test_hardened_lock_key_info_and_unlock(capsys, workdir, trained_ckpt) -> None:
    code, out, _ = run(
        capsys,
        "lock",
        trained_ckpt,
        "--scheme",
        "hardened",
        "--out",
        workdir / "h1",
        "--key",
        workdir / "hk1",
        "--json",
    )
    s = json.loads(out)
    assert code == 0 and s["params_changed"] == s["params_total"]  # every parameter moved
    code, out, _ = run(capsys, "key-info", workdir / "hk1", "--json")
    info = json.loads(out)
    assert code == 0 and info["scheme"] == "hardened" and sum(info["tensors"].values()) == s["params_total"]
    assert info["config"]["reproducible"] is False
    assert (workdir / "hk1").stat().st_size < 4096  # the secret, not the values
    code, out, _ = run(capsys, "unlock", workdir / "h1", "--key", workdir / "hk1", "--out", workdir / "hr1", "--json")
    assert code == 0 and json.loads(out)["exact"] is True
    assert state_equal(load_checkpoint(workdir / "hr1").model, load_checkpoint(trained_ckpt).model)


def test_sealed_key_via_cli(capsys, workdir, trained_ckpt, monkeypatch) -> None:
    pw = workdir / "pw"
    pw.write_text("open sesame\n")
    assert (
        run(
            capsys,
            "lock",
            trained_ckpt,
            "--out",
            workdir / "ls",
            "--key",
            workdir / "ks",
            "--passphrase-file",
            pw,
            "--no-eval",
        )[0]
        == 0
    )
    code, _, err = run(capsys, "unlock", workdir / "ls", "--key", workdir / "ks", "--out", workdir / "rs")
    assert_one_line_error(code, err, "is sealed")
    bad = workdir / "bad"
    bad.write_text("open sesame!\n")
    code, _, err = run(
        capsys, "unlock", workdir / "ls", "--key", workdir / "ks", "--out", workdir / "rs", "--passphrase-file", bad
    )
    assert_one_line_error(code, err, "wrong passphrase")
    monkeypatch.setenv("ADVPARAMS_PASSPHRASE", "open sesame")
    assert run(capsys, "unlock", workdir / "ls", "--key", workdir / "ks", "--out", workdir / "rs")[0] == 0
    code, out, _ = run(capsys, "key-info", workdir / "ks", "--json")
    assert code == 0 and json.loads(out)["sealed"] is True
    assert not (workdir / "rs-nothing").exists()


def test_existing_outputs_not_overwritten(capsys, workdir, trained_ckpt, locked) -> None:
    out, key = locked
    before = key.read_bytes(), (out / "model.safetensors").read_bytes()
    code, _, err = run(capsys, "lock", trained_ckpt, "--out", out, "--key", key)
    assert_one_line_error(code, err, "exists; pass --force")
    assert (key.read_bytes(), (out / "model.safetensors").read_bytes()) == before
    code, _, err = run(capsys, "train", "--model", "lenet", "--dataset", "synthetic", "--out", trained_ckpt)
    assert_one_line_error(code, err, "exists")
    assert run(capsys, "lock", trained_ckpt, "--out", out, "--key", key, "--force", "--no-eval")[0] == 0


def test_wrong_key_and_unlocked_model(capsys, workdir, trained_ckpt, locked) -> None:
    out, _ = locked
    assert (
        run(
            capsys,
            "lock",
            trained_ckpt,
            "--out",
            workdir / "l2",
            "--key",
            workdir / "k2",
            "--seed",
            "9",
            "--set",
            'exclude=["features.0.*"]',
            "--no-eval",
        )[0]
        == 0
    )
    code, _, err = run(capsys, "unlock", out, "--key", workdir / "k2", "--out", workdir / "never")
    assert_one_line_error(code, err, "does not belong to this model")
    code, _, err = run(capsys, "unlock", trained_ckpt, "--key", workdir / "k2", "--out", workdir / "never")
    assert_one_line_error(code, err, "not locked")
    assert not (workdir / "never").exists()


def test_corrupt_files(capsys, workdir, locked) -> None:
    out, key = locked
    trunc = workdir / "trunc.key"
    trunc.write_bytes(key.read_bytes()[:200])
    code, _, err = run(capsys, "unlock", out, "--key", trunc, "--out", workdir / "never")
    assert_one_line_error(code, err, "truncated")
    edited = workdir / "edited.key"
    raw = bytearray(key.read_bytes())
    raw[-2] ^= 1
    edited.write_bytes(bytes(raw))
    code, _, err = run(capsys, "unlock", out, "--key", edited, "--out", workdir / "never")
    assert_one_line_error(code, err, "digest mismatch")
    broken = workdir / "broken"
    shutil.copytree(out, broken)
    (broken / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:300])
    code, _, err = run(capsys, "evaluate", broken)
    assert_one_line_error(code, err, "truncated or corrupt")
    code, _, err = run(capsys, "unlock", workdir / "absent", "--key", key, "--out", workdir / "never")
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(capsys, "unlock", out, "--key", workdir / "absent.key", "--out", workdir / "never")
    assert_one_line_error(code, err, "does not exist")
    assert not (workdir / "never").exists()


def test_missing_data_and_unknown_names(capsys, workdir, trained_ckpt, tmp_path) -> None:
    code, _, err = run(capsys, "evaluate", trained_ckpt, "--dataset", "fashion-mnist", "--data-dir", tmp_path)
    assert_one_line_error(code, err, "not found")
    code, _, err = run(capsys, "evaluate", trained_ckpt, "--dataset", "cifar10")
    assert_one_line_error(code, err, "--data-dir")
    code, _, err = run(
        capsys, "lock", trained_ckpt, "--out", workdir / "x", "--key", workdir / "xk", "--set", "colour=red"
    )
    assert_one_line_error(code, err, "unknown option(s) colour")
    bad = workdir / "unknown-arch"
    shutil.copytree(trained_ckpt, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["architecture"] = "alexnet"
    (bad / "model.json").write_text(json.dumps(meta))
    code, _, err = run(capsys, "evaluate", bad)
    assert_one_line_error(code, err, "unknown model 'alexnet'")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "alexnet", "--dataset", "synthetic"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda(capsys, trained_ckpt) -> None:
    code, _, err = run(capsys, "evaluate", trained_ckpt, "--device", "cuda")
    assert_one_line_error(code, err, "CUDA is not available")


def test_list_and_console_script(capsys) -> None:
    code, out, _ = run(capsys, "list", "--json")
    listed = {family: [m["name"] for m in members] for family, members in json.loads(out).items() if family not in
              ("schema", "ok", "command")}  # fmt: skip
    assert code == 0 and listed["schemes"] == SCHEMES.names() and listed["attacks"] == ATTACKS.names()
    from advparams.backdoors import BACKDOORS
    from advparams.watermarks import WATERMARKS

    assert listed["backdoors"] == BACKDOORS.names() and listed["watermarks"] == WATERMARKS.names()
    assert "fashion-mnist-colour" in listed["datasets"]
    assert {"advparams"} <= set(listed["schemes"]) and {"prune", "finetune", "clip", "outlier-reset"} <= set(
        listed["attacks"]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "advparams", "lock", "--scheme", "advparams", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "max_params" in proc.stdout and "--passphrase-file" in proc.stdout


# ----------------------------------------------------------------- evaluate-protection

TINY_YAML = """
name: cli-tiny
dataset: synthetic
model: lenet
seeds: [0]
train: {epochs: 2}
test_samples: 100
schemes:
  - name: advparams
  - name: random
    match_params: advparams
attacks:
  - name: prune
    grid: {rate: [0.5]}
  - name: key-leak
    grid: {fraction: [0.5]}
"""


def test_evaluate_protection_runs_resumes_and_reports(capsys, tmp_path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_YAML)
    out, rep = tmp_path / "run", tmp_path / "report"
    args = ["evaluate-protection", "--config", cfg, "--out", out, "--report-dir", rep, "--device", "cpu", "--json"]
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    summary = json.loads(stdout)
    assert set(summary["locked_accuracy"]) == {"advparams/seed0", "random/seed0"}
    text = (rep / "report.md").read_text()
    assert "## Attack: prune" in text and "## Attack: key-leak" in text
    assert f"advparams evaluate-protection --config {cfg}" in text
    assert (rep / "plots" / "hist-advparams.png").exists()
    rows = (out / "results.jsonl").read_text().splitlines()
    # Again: resumed, one session row more, nothing else.
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and len((out / "results.jsonl").read_text().splitlines()) == len(rows) + 1
    # The report alone, rebuilt from the rows.
    code, stdout, err = run(capsys, "report", out, "--no-plots", "--json")
    assert code == 0, err
    assert json.loads(stdout)["report"] == str(out / "report.md")
    # A different config into the same folder: refused, nothing lost.
    cfg2 = tmp_path / "tiny2.yaml"
    cfg2.write_text(TINY_YAML.replace("seeds: [0]", "seeds: [1]"))
    code, _, err = run(capsys, "evaluate-protection", "--config", cfg2, "--out", out, "--no-plots")
    assert_one_line_error(code, err, "different configuration")
    assert len((out / "results.jsonl").read_text().splitlines()) == len(rows) + 1


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        (
            "name: x\ndataset: synthetic\nmodel: lenet\nschemes: [{name: advparams, options: {max_param: 1}}]\n",
            "max_param",
        ),
        ("name: x\ndataset: synthetic\nmodel: lenet\n", "no schemes"),
        ("name: [x\n", "not valid YAML"),
        ("name: x\ndataset: nope\nmodel: lenet\nschemes: [{name: advparams}]\n", "nope"),
    ],
)
def test_evaluate_protection_bad_configs(capsys, tmp_path, yaml_text, match) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    code, _, err = run(capsys, "evaluate-protection", "--config", cfg, "--out", tmp_path / "run")
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "run").exists()


def test_evaluate_protection_missing_config_and_report_of_nothing(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "evaluate-protection", "--config", tmp_path / "none.yaml")
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(capsys, "report", tmp_path)
    assert_one_line_error(code, err, "not an evaluation run")
