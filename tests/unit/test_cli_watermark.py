"""``advparams watermark`` end to end on synthetic data, and its error paths."""

import json

import pytest

from advparams.checkpoint import load_checkpoint
from advparams.cli import main
from advparams.watermarks import load_watermark_key
from tests.unit.cli_helpers import one_line_error, run


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    work = tmp_path_factory.mktemp("wmcli")
    paths = []
    for seed in (0, 1, 2):
        path = work / f"model{seed}"
        argv = ["train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "2", "--seed", str(seed)]
        assert main([*argv, "--out", str(path), "--device", "cpu", "--json"]) == 0
        paths.append(path)
    return work, paths


FAST = ["--set", "num_keys=20", "--set", "epochs=2"]


def test_embed_verify_and_users(models, capsys) -> None:
    work, (owner, null1, null2) = models
    out, key = work / "marked", work / "wm.wmkey"
    code, stdout, _ = run(
        capsys, "watermark", "embed", owner, "--out", out, "--key", key, *FAST, "--device", "cpu", "--json"
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["watermark_accuracy"] >= 0.9 and summary["num_keys"] == 20
    marked = load_checkpoint(out)
    assert marked.arguments["num_classes"] == 11  # the additional class
    assert load_watermark_key(key).score(marked.model) == summary["watermark_accuracy"]

    code, stdout, _ = run(
        capsys, "watermark", "verify", out, "--key", key, "--null", null1, null2, "--fpr", "1e-3", "--json"
    )
    v = json.loads(stdout)
    assert code == 0 and v["verified"] is True and v["threshold"] > max(v["null_scores"])
    code, stdout, _ = run(
        capsys, "watermark", "verify", null1, "--key", key, "--null", null2, "--fpr", "1e-3", "--json"
    )
    assert code == 3 and json.loads(stdout)["verified"] is False  # exit 3: not verified

    table = work / "users.json"
    assert run(capsys, "watermark", "users", "create", table)[0] == 0
    assert run(capsys, "watermark", "users", "add", table, "alice", "bob")[0] == 0
    code, stdout, _ = run(capsys, "watermark", "users", "list", table, "--json")
    assert json.loads(stdout)["users"] == ["alice", "bob"]
    alice = work / "alice.wmkey"
    assert run(capsys, "watermark", "users", "issue", table, "--key", key, "--user", "alice", "--out", alice)[0] == 0
    code, stdout, _ = run(capsys, "watermark", "users", "identify", table, "--key", alice, "--model", out, "--json")
    found = json.loads(stdout)
    assert code == 0 and found["user"] == "alice" and found["images_naming_user"] == 20
    # the user's images differ from the owner's in their low bits, so the model's answer on them is
    # measured on those images, not copied from the embed summary
    assert found["model_recognises"] == load_watermark_key(alice).score(marked.model)
    assert found["model_recognises"] >= summary["watermark_accuracy"] - 0.1
    # The owner's plain key images carry nobody's fingerprint: exit 3.
    code, stdout, _ = run(capsys, "watermark", "users", "identify", table, "--key", key, "--json")
    assert code == 3 and json.loads(stdout)["user"] is None


def test_errors_are_one_line(models, capsys, tmp_path) -> None:
    work, (owner, null1, _) = models
    key = tmp_path / "wm.wmkey"
    out = tmp_path / "marked"
    assert (
        run(
            capsys,
            "watermark",
            "embed",
            owner,
            "--out",
            out,
            "--key",
            key,
            "--scheme",
            "zhang-noise",
            *FAST,
            "--no-eval",
        )[0]
        == 0
    )
    # No silent overwrite.
    code, _, err = run(capsys, "watermark", "embed", owner, "--out", out, "--key", key, *FAST)
    one_line_error(code, err, "exists")
    # A corrupt key, a missing one, a locked model.
    bad = tmp_path / "bad.wmkey"
    bad.write_bytes(key.read_bytes()[:-3])
    code, _, err = run(capsys, "watermark", "verify", out, "--key", bad, "--null", null1)
    one_line_error(code, err, "watermark key")
    code, _, err = run(capsys, "watermark", "verify", out, "--key", tmp_path / "none", "--null", null1)
    one_line_error(code, err, "does not exist")
    code, _, err = run(
        capsys, "watermark", "embed", owner, "--out", tmp_path / "o2", "--key", tmp_path / "k2", "--set", "nope=1"
    )
    one_line_error(code, err, "unknown option")
    table = tmp_path / "users.json"
    assert run(capsys, "watermark", "users", "create", table)[0] == 0
    code, _, err = run(capsys, "watermark", "users", "create", table)
    one_line_error(code, err, "exists")
    assert run(capsys, "watermark", "users", "add", table, "alice")[0] == 0
    code, _, err = run(capsys, "watermark", "users", "add", table, "alice")
    one_line_error(code, err, "already registered")
    code, _, err = run(
        capsys, "watermark", "users", "issue", table, "--key", key, "--user", "eve", "--out", tmp_path / "e"
    )
    one_line_error(code, err, "unknown user")
    table.write_text(table.read_text().replace("alice", "alicf"))
    code, _, err = run(capsys, "watermark", "users", "list", table)
    one_line_error(code, err, "digest")
