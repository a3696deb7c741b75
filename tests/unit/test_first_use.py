"""First use without friction: what a new user met on the way, each as a test that fails
on what was found and passes on what is promised."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from advparams.checkpoint import save_checkpoint
from advparams.cli import main
from advparams.models import build_model
from tests.unit.cli_helpers import one_line_error, run

ARGS = {"num_classes": 10, "in_channels": 1, "input_size": 16}


def test_a_reader_that_stops_reading_gets_no_traceback() -> None:
    """``advparams list --json | head`` ended in a BrokenPipeError traceback."""
    code = "import sys; from advparams.cli import main; sys.exit(main(['list', '--json']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


@pytest.fixture()
def lenet16(tmp_path):
    path = tmp_path / "m"
    save_checkpoint(build_model("lenet", ARGS, seed=0), path, architecture="lenet", arguments=ARGS, dataset="synthetic")
    return path


def test_a_checkpoint_with_no_classes_is_one_error_line_without_torch_warnings(capsys, lenet16) -> None:
    meta = json.loads((lenet16 / "model.json").read_text())
    meta["arguments"]["num_classes"] = 0
    (lenet16 / "model.json").write_text(json.dumps(meta))
    code, _, err = run(capsys, "evaluate", lenet16)
    one_line_error(code, err, "num_classes must be an integer in [1, 1000000], got 0")


def test_a_misspelt_option_gets_a_did_you_mean(capsys, lenet16, tmp_path) -> None:
    outputs = ["--out", tmp_path / "L", "--key", tmp_path / "k"]
    code, _, err = run(capsys, "lock", lenet16, *outputs, "--set", "max_param=5")
    one_line_error(code, err, "unknown option(s) max_param (did you mean max_params?)")


def test_an_unknown_architecture_in_train_says_how_to_bring_ones_own(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "mynet", "--dataset", "synthetic", "--out", str(tmp_path / "m")])
    assert exc.value.code == 2
    assert "--import MODULE_OR_FILE" in capsys.readouterr().err


def test_advparams_data_pointing_nowhere_is_an_error_not_ignored(monkeypatch, tmp_path) -> None:
    from advparams.data import load_dataset
    from advparams.errors import DataError

    monkeypatch.setenv("ADVPARAMS_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="ADVPARAMS_DATA is .*missing, which is not a folder"):
        load_dataset("fashion-mnist", "test", None)


def test_an_overwrite_refusal_reads_as_a_sentence_about_this_output(tmp_path) -> None:
    """It read "was not made by `advparams this command`" and "pass --force (force=True)"."""
    from advparams.errors import OutputExistsError
    from advparams.files import atomic_write_bytes, check_output

    path = tmp_path / "f.bin"
    path.write_bytes(b"mine")
    with pytest.raises(OutputExistsError) as plain:
        check_output(path, force=False)
    with pytest.raises(OutputExistsError) as kind:
        atomic_write_bytes(path, b"x", force=True, accept=lambda p: False, what="a query file")
    assert str(plain.value) == f"{path} exists; pass --force to overwrite it"
    assert f"{path} exists and is not a query file, the only thing --force replaces here" in str(kind.value)
    for text in (str(plain.value), str(kind.value)):
        assert "this command" not in text and "force=True" not in text
    assert path.read_bytes() == b"mine"
