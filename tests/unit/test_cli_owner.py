"""A model owner's own model from the CLI to a customer (issue 18): each of the ten
findings, as a test that fails on the behaviour found and passes on the one promised."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.cli import main
from advparams.cli._common import EXIT_NO, EXIT_PARTIAL, EXIT_USAGE
from advparams.cli.locks import LockBar
from advparams.errors import ConfigError, UnknownNameError
from advparams.keys import load_key
from advparams.models import MODELS, build_model
from advparams.schemes import SCHEMES, AdvParams, AdvParamsConfig, LockProgress
from tests.unit.cli_helpers import run

ARGS = {"num_classes": 10, "in_channels": 1, "input_size": 16}


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("advparams: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("owner")


@pytest.fixture(scope="module")
def trained(work):
    paths = []
    for seed in (0, 1, 2):
        path = work / f"model{seed}"
        argv = ["train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "2", "--seed", str(seed)]
        assert main([*argv, "--out", str(path), "--device", "cpu", "--json"]) == 0
        paths.append(path)
    return paths


# ----------------------------------------------------------------- 1. watermarked models lock


def test_1_a_watermarked_model_locks_evaluates_and_unlocks_from_the_cli(capsys, work, trained) -> None:
    marked, wmkey = work / "marked", work / "wm.wmkey"
    fast = ["--set", "num_keys=20", "--set", "epochs=2"]
    assert run(capsys, "watermark", "embed", trained[0], "--out", marked, "--key", wmkey, *fast, "--json")[0] == 0
    assert load_checkpoint(marked).arguments["num_classes"] == 11
    code, out, err = run(capsys, "lock", marked, "--out", work / "marked-locked", "--key", work / "m.key", "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy_locked"] <= 0.2
    code, out, _ = run(capsys, "evaluate", work / "marked-locked", "--json")
    assert code == 0 and json.loads(out)["locked"] is True
    code, _, _ = run(capsys, "unlock", work / "marked-locked", "--key", work / "m.key", "--out", work / "mu")
    assert code == 0
    assert code == 0 and load_checkpoint(work / "mu").meta["fingerprint"] == load_checkpoint(marked).meta["fingerprint"]
    # ... and the watermark verifies on the unlocked copy (exit 0), not on a stranger (exit 3)
    nulls = [trained[1], trained[2]]
    assert run(capsys, "watermark", "verify", work / "mu", "--key", wmkey, "--null", *nulls, "--fpr", "1e-3")[0] == 0


def test_1_a_model_with_fewer_outputs_than_classes_is_still_refused(capsys, work) -> None:
    small = work / "five"
    save_checkpoint(
        build_model("lenet", {**ARGS, "num_classes": 5}, seed=0),
        small,
        architecture="lenet",
        arguments={**ARGS, "num_classes": 5},
        dataset="synthetic",
    )
    code, _, err = run(capsys, "evaluate", small)
    assert code == 1 and "does not fit data set synthetic" in one_line(err)


# ----------------------------------------------------------------- 2. the user's own architecture

USER_MODULE = '''
from torch import nn
from advparams.models import MODELS


class OwnersNet(nn.Module):
    """A net of the owner's that returns a dict (as many research code bases do)."""

    def __init__(self, num_classes=10, in_channels=1, input_size=16):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * input_size * input_size, 48), nn.ReLU())
        self.head = nn.Linear(48, num_classes)

    def forward(self, x):
        return {KEY: self.head(self.body(x)), "features": self.body(x)}


@MODELS.register(NAME)
def build(num_classes=10, in_channels=1, input_size=16):
    """The owner's own two-layer net."""
    return OwnersNet(num_classes, in_channels, input_size)
'''


def user_module(folder: Path, name: str, key: str = "logits") -> Path:
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text(USER_MODULE.replace("NAME", repr(name)).replace("KEY", repr(key)))
    return path


def test_2_a_user_module_registered_by_import_is_trained_locked_and_unlocked_from_the_cli(
    capsys, tmp_path, monkeypatch
) -> None:
    outside = tmp_path / "owner_code"
    outside.mkdir()
    module = user_module(outside, "owners-net-a")
    monkeypatch.chdir(tmp_path)
    train = ["train", "--model", "owners-net-a", "--dataset", "synthetic", "--epochs", "3", "--out", "m"]
    # without the import the name is unknown to argparse (exit 2) ...
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in train])
    assert exc.value.code == EXIT_USAGE and "invalid choice: 'owners-net-a'" in capsys.readouterr().err
    # ... with it, every command knows the architecture
    assert run(capsys, "--import", module, *train, "--json")[0] == 0
    # the tiny two-layer net on the synthetic templates needs more values than the default budget
    lock = ["lock", "m", "--out", "L", "--key", "k.key", "--set", "max_params=400"]
    code, out, err = run(capsys, *lock, "--import", module, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["accuracy_locked"] <= 0.2 and summary["target_met"] is True
    # the key names the module's own parameters: no adapter prefix
    names = {e.name for e in load_key("k.key").entries}
    assert names and names <= {"body.1.weight", "head.weight"}
    code, _, err = run(capsys, f"--import={module}", "unlock", "L", "--key", "k.key", "--out", "U")
    assert code == 0, err
    assert load_checkpoint("U").meta["fingerprint"] == load_checkpoint("m").meta["fingerprint"]


def test_2_an_unregistered_architecture_says_how_to_register_it(capsys, tmp_path, monkeypatch) -> None:
    module = user_module(tmp_path, "owners-net-b")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "--import", module, "train", "--model", "owners-net-b", "--dataset", "synthetic",
               "--epochs", "1", "--out", "m")[0] == 0  # fmt: skip
    MODELS._items.pop("owners-net-b")  # a new process, which has not imported the module
    from advparams import plugins

    plugins._LOADED.clear()
    code, _, err = run(capsys, "evaluate", "m")
    line = one_line(err)
    assert code == 1 and "unknown model 'owners-net-b'" in line and "--import" in line and "ADVPARAMS_IMPORT" in line
    with pytest.raises(UnknownNameError, match="MODELS.register"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x", architecture="mynet", arguments={})
    # the environment variable brings it in too
    monkeypatch.setenv("ADVPARAMS_IMPORT", str(module))
    code, out, err = run(capsys, "evaluate", "m", "--json")
    assert code == 0, err and json.loads(out)["accuracy"] > 0.5


def test_2_a_module_that_fails_to_import_is_one_error_line(capsys, tmp_path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    code, _, err = run(capsys, "--import", bad, "list")
    assert code == 1 and "cannot import" in one_line(err) and "boom" in err
    code, _, err = run(capsys, "list", "--import", tmp_path / "missing.py")
    assert code == 1 and "no such file" in one_line(err)


def test_2_entry_points_of_the_advparams_models_group_are_loaded(monkeypatch) -> None:
    from advparams import plugins

    loaded = []

    class EntryPoint:
        name, value = "acme", "acme.models:register"

        def load(self):
            loaded.append(self.name)

    monkeypatch.setattr(plugins.importlib.metadata, "entry_points", lambda group: [EntryPoint()] if group ==
                        plugins.ENTRY_POINT_GROUP else [])  # fmt: skip
    assert plugins.load_entry_points() == ["acme"] and loaded == ["acme"]


def test_2_evaluation_configs_import_the_users_module(tmp_path) -> None:
    from advparams.evaluation import load_config

    user_module(tmp_path, "owners-net-c")
    (tmp_path / "c.yaml").write_text(
        "name: own\ndataset: synthetic\nmodel: owners-net-c\nimports: [owners_net_c.py]\n"
        "model_output: logits\nschemes: [{name: advparams}]\n"
    )
    cfg = load_config(tmp_path / "c.yaml")
    assert "owners-net-c" in MODELS and cfg.imports == (str((tmp_path / "owners_net_c.py").resolve()),)
    assert cfg.to_dict()["model_output"] == "logits"


# ----------------------------------------------------------------- 3. output adapters


class TupleNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)), x.mean()


class ScoresNet(TupleNet):
    def forward(self, x):
        return {"scores": self.fc(x.flatten(1))}


def test_3_tuple_and_dict_outputs_are_locked_with_the_modules_own_names(data) -> None:
    from advparams.metrics.accuracy import model_output
    from advparams.training import TrainConfig, train

    torch.manual_seed(0)  # the nets' initial weights: not whatever the tests before left
    for net, how in ((TupleNet(), "auto"), (ScoresNet(), "key:scores")):
        with model_output(how):
            model = train(net, data, TrainConfig(epochs=3)).model
            result = AdvParams(max_params=1000, num_samples=200).lock(model, data)
        assert result.report.target_met
        assert {e.name for e in result.key.entries} <= {"fc.weight"}
    with pytest.raises(Exception, match=r"class scores of shape \[N, C\].*model-output"):
        AdvParams().lock(ScoresNet(), data)  # "scores" is not found by auto
    with pytest.raises(ConfigError, match="unknown model output"), model_output("nonsense"):
        pass


def test_3_the_model_output_option_reaches_the_cli(capsys, tmp_path, monkeypatch) -> None:
    module = user_module(tmp_path, "owners-net-d", key="scores")
    monkeypatch.chdir(tmp_path)
    base = ["--import", module, "train", "--model", "owners-net-d", "--dataset", "synthetic", "--epochs", "2"]
    code, _, err = run(capsys, *base, "--out", "m")
    assert code == 1 and "model-output" in one_line(err)
    assert run(capsys, *base, "--out", "m2", "--model-output", "key:scores")[0] == 0
    code, out, _ = run(capsys, "--import", module, "evaluate", "m2", "--model-output", "key:scores", "--json")
    assert code == 0 and json.loads(out)["accuracy"] > 0.5


# ----------------------------------------------------------------- 4. honest lock outcomes


def test_4_a_lock_that_misses_its_target_exits_4_and_writes_nothing(capsys, tmp_path, trained) -> None:
    out, key = tmp_path / "L", tmp_path / "k.key"
    code, stdout, err = run(capsys, "lock", trained[0], "--out", out, "--key", key, "--set", "max_params=1", "--json")
    assert code == EXIT_PARTIAL and "missed its target" in one_line(err) and "--allow-partial" in err
    assert not out.exists() and not key.exists()
    assert json.loads(stdout) == {
        "schema": 1,
        "ok": False,
        "command": "lock",
        "error": one_line(err).removeprefix("advparams: error: "),
        "exit_code": EXIT_PARTIAL,
    }
    code, stdout, _ = run(
        capsys, "lock", trained[0], "--out", out, "--key", key, "--set", "max_params=1", "--allow-partial", "--json"
    )
    s = json.loads(stdout)
    assert code == 0 and s["partial"] is True and s["target_met"] is False and s["stopped"] == "budget"
    assert load_checkpoint(out).meta["record"]["lock"]["target_met"] is False


def test_4_an_untrained_model_is_not_locked_with_nothing_changed(capsys, tmp_path) -> None:
    ckpt = tmp_path / "untrained"
    save_checkpoint(build_model("lenet", ARGS, seed=0), ckpt, architecture="lenet", arguments=ARGS, dataset="synthetic")
    code, _, err = run(capsys, "lock", ckpt, "--out", tmp_path / "L", "--key", tmp_path / "k.key")
    assert code == EXIT_PARTIAL and "nothing to lock" in one_line(err)
    assert not (tmp_path / "L").exists()


def test_4_the_lock_report_says_whether_the_target_was_met(trained_model_and_data) -> None:
    model, data = trained_model_and_data
    partial = AdvParams(max_params=1, num_samples=200).lock(model, data).report
    assert not partial.target_met and "missed its target" in (partial.problem() or "")
    full = AdvParams(num_samples=200).lock(model, data).report
    assert full.target_met and full.problem() is None


@pytest.fixture
def trained_model_and_data():
    from advparams.testing import tiny_trained_classifier

    return tiny_trained_classifier(seed=0)


# ----------------------------------------------------------------- 5. unlock needs no data


def test_5_unlock_needs_only_the_model_and_the_key(capsys, tmp_path, trained, monkeypatch) -> None:
    out, key = tmp_path / "L", tmp_path / "k.key"
    assert run(capsys, "lock", trained[0], "--out", out, "--key", key, "--no-eval")[0] == 0
    import advparams.usecases.data as data  # where every verb's data set is loaded (use-case layer)

    def no_data(*a, **k):
        raise AssertionError("unlock loaded a data set")

    monkeypatch.setattr(data, "load_dataset", no_data)
    code, stdout, err = run(capsys, "unlock", out, "--key", key, "--out", tmp_path / "U", "--json")
    assert code == 0, err
    assert json.loads(stdout)["accuracy_unlocked"] is None
    monkeypatch.undo()
    code, stdout, _ = run(capsys, "unlock", out, "--key", key, "--out", tmp_path / "U2", "--eval", "--json")
    assert code == 0 and json.loads(stdout)["accuracy_unlocked"] > 0.5


# ----------------------------------------------------------------- 6. yes/no exit codes


def test_6_verify_commands_exit_3_when_not_verified(capsys, work, trained) -> None:
    fp = work / "owner.fingerprint"
    fast = ["--set", "points=16", "--set", "steps=30"]
    assert run(capsys, "fingerprint", "extract", trained[0], "--scheme", "ipguard", *fast, "--out", fp)[0] == 0
    code, out, _ = run(
        capsys, "fingerprint", "verify", trained[0], "--fingerprint", fp, "--null", *trained[1:], "--json"
    )
    assert code == 0 and json.loads(out)["verified"] is True
    code, out, _ = run(capsys, "fingerprint", "verify", trained[1], "--fingerprint", fp, "--null", trained[2],
                       trained[1], "--json")  # fmt: skip
    assert code == EXIT_NO and json.loads(out)["verified"] is False and json.loads(out)["ok"] is True


# ----------------------------------------------------------------- 7. options checked early


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("max_params=abc", "option max_params must be an integer, got 'abc'"),
        ("include=classifier.*", 'option include must be a list of strings, such as ["classifier.*"]'),
        ("max_params=0", "max_params must be at least 1, got 0"),
        ("selection=best", "option selection must be one of 'gain', 'gradient', got 'best'"),
    ],
)
def test_7_bad_options_name_the_option_the_value_and_what_is_allowed(capsys, tmp_path, trained, value, message):
    code, _, err = run(capsys, "lock", trained[0], "--out", tmp_path / "L", "--key", tmp_path / "k", "--set", value)
    assert code == 1 and message in one_line(err)
    assert "'<' not supported" not in err and "sequences of patterns" not in err


def test_7_the_api_takes_a_config_a_mapping_or_keywords_and_checks_types_at_construction() -> None:
    assert AdvParams({"max_params": 5}).config == AdvParams(max_params=5).config == AdvParamsConfig(max_params=5)
    assert AdvParams(AdvParamsConfig(max_params=5), step=0.5).config.step == 0.5
    with pytest.raises(ConfigError, match="max_params must be an integer, got '5'"):
        AdvParamsConfig(max_params="5")
    with pytest.raises(ConfigError, match="unknown option"):
        AdvParams({"max_param": 5})
    with pytest.raises(ConfigError, match="takes its config"):
        AdvParams(5)


def every_config():
    from advparams.house import registries

    for family, (registry, _) in registries().items():
        for name in registry.names():
            cfg = getattr(registry.get(name), "Config", None)
            if cfg is not None:
                yield pytest.param(cfg, id=f"{family}-{name}")


@pytest.mark.parametrize("config_cls", list(every_config()))
def test_7_every_registered_config_refuses_wrong_types_at_construction(config_cls) -> None:
    import dataclasses
    import typing

    hints = typing.get_type_hints(config_cls)
    checked = 0
    for f in dataclasses.fields(config_cls):
        if hints[f.name] in (int, float, bool):
            with pytest.raises(ConfigError, match=f"option {f.name} must be"):
                config_cls(**{f.name: "not a number"})
            checked += 1
    assert checked > 0


# ----------------------------------------------------------------- 8. one --json schema


def test_8_json_fields_agree_across_commands(capsys, tmp_path, trained) -> None:
    out, key = tmp_path / "L", tmp_path / "k.key"
    _, t, _ = run(capsys, "train", "--model", "lenet", "--dataset", "synthetic", "--epochs", "1", "--out",
                  tmp_path / "m", "--json")  # fmt: skip
    _, lock, _ = run(capsys, "lock", trained[0], "--out", out, "--key", key, "--json")
    _, ev, _ = run(capsys, "evaluate", out, "--json")
    _, un, _ = run(capsys, "unlock", out, "--key", key, "--out", tmp_path / "U", "--json")
    t, lock, ev, un = map(json.loads, (t, lock, ev, un))
    for s in (t, lock, ev, un):
        assert s["schema"] == 1 and s["ok"] is True and isinstance(s["command"], str)
    assert t["out"] == str(tmp_path / "m") and "checkpoint" not in t  # what train writes is its out
    assert lock["checkpoint"] == str(trained[0]) and un["checkpoint"] == str(out) and ev["checkpoint"] == str(out)
    assert lock["out"] == str(out) and un["out"] == str(tmp_path / "U")
    assert ev["locked"] is True and "locked" not in un  # never a path
    for s in (t, lock, ev, un):
        for k, v in s.items():
            if isinstance(v, float):
                assert len(re.sub(r"^0\.0*|[.-]|e.*$", "", repr(v))) <= 6, (k, v)  # no float32 noise
    assert lock["accuracy_before"] == float(f"{lock['accuracy_before']:.6g}")


def test_8_errors_and_usage_errors_come_out_as_json(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "evaluate", tmp_path / "nowhere", "--json")
    e = json.loads(out)
    assert code == 1 and e["ok"] is False and e["exit_code"] == 1 and "does not exist" in e["error"]
    with pytest.raises(SystemExit) as exc:  # a missing argument: argparse exits 2
        main(["evaluate", "--json"])
    e = json.loads(capsys.readouterr().out)
    assert (
        exc.value.code == EXIT_USAGE
        and e["ok"] is False
        and e["exit_code"] == EXIT_USAGE
        and e["command"] == "evaluate"
    )


# ----------------------------------------------------------------- 9. feedback


def test_9_the_lock_bar_counts_the_points_to_the_target_not_the_budget() -> None:
    bar = LockBar("advparams", quiet=True)
    bar.update(LockProgress(1, 1, 100, lock_accuracy=0.60, target_accuracy=0.12, loss=1.0, start_accuracy=0.92))
    assert bar.bar.total == pytest.approx(80.0) and bar.bar.n == pytest.approx(32.0)
    bar.update(LockProgress(9, 9, 100, lock_accuracy=0.10, target_accuracy=0.12, loss=3.0, start_accuracy=0.92))
    assert bar.bar.n == bar.bar.total  # done when the target is reached, whatever the budget
    bar.close()


def test_9_watermark_embedding_reports_progress_and_the_hardened_lock_its_own_stop(trained_model_and_data):
    from advparams.watermarks import WATERMARKS

    model, data = trained_model_and_data
    calls = []
    WATERMARKS.build("additional-class", {"num_keys": 10, "epochs": 1}).embed(
        model, data, progress=lambda step, steps: calls.append((step, steps))
    )
    assert calls and calls[-1][0] == calls[-1][1] and [c[0] for c in calls] == list(range(1, len(calls) + 1))
    report = SCHEMES.build("hardened", {"num_samples": 100}).lock(model, data).report
    assert report.stopped == "shuffled"


# ----------------------------------------------------------------- 10. discoverability


def test_10_list_shows_every_registry_with_descriptions(capsys) -> None:
    code, out, _ = run(capsys, "list", "--json")
    s = json.loads(out)
    for family in ("schemes", "attacks", "watermarks", "backdoors", "detectors", "fingerprints", "models", "datasets"):
        assert s[family] and all(m["name"] and m["description"] for m in s[family]), family
    assert "additional-class" in {m["name"] for m in s["watermarks"]}
    code, out, _ = run(capsys, "list", "watermarks")
    assert code == 0 and out.startswith("watermarks") and "additional-class" in out and "schemes" not in out


def test_10_lock_help_is_short_and_one_schemes_help_is_its_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lock", "--help"])
    assert exc.value.code == 0
    general = capsys.readouterr().out
    assert len(general.splitlines()) < 65 and "max_steps" not in general
    assert all(name in general for name in SCHEMES.names())
    with pytest.raises(SystemExit):
        main(["lock", "--scheme", "hardened", "--help"])
    one = capsys.readouterr().out
    assert "options of scheme 'hardened'" in one and "fraction" in one and "max_steps" not in one
    assert "``" not in one and ":class:" not in one


def test_finite_json_values() -> None:
    from advparams.cli._common import json_ready

    assert json_ready({"a": 0.09969999641180038, "b": math.nan, "c": (1, 2.5)}) == {
        "a": 0.0997,
        "b": None,
        "c": [1, 2.5],
    }


def test_user_module_registers_a_dict_returning_model(tmp_path) -> None:
    """What the tests of this file rely on: the module ``user_module`` writes registers the
    named model, whose output is a dict holding the class scores under the given key."""
    path = user_module(tmp_path, "owners-net-t", key="scores")
    assert "owners-net-t" not in MODELS
    try:
        exec(compile(path.read_text(), str(path), "exec"), {"__name__": "owners_net_t"})
        net = MODELS.get("owners-net-t")(num_classes=7, in_channels=3, input_size=8)
    finally:
        MODELS._items.pop("owners-net-t", None)
    out = net(torch.zeros(2, 3, 8, 8))
    assert set(out) == {"scores", "features"} and out["scores"].shape == (2, 7) and out["features"].shape == (2, 48)


def test_3_an_evaluation_runs_the_users_dict_returning_model_from_its_config(capsys, tmp_path) -> None:
    user_module(tmp_path, "owners-net-e", key="scores")
    cfg = tmp_path / "own.yaml"
    cfg.write_text(
        "name: own\ndataset: synthetic\nmodel: owners-net-e\nimports: [owners_net_e.py]\nmodel_output: key:scores\n"
        "seeds: [0]\ntrain: {epochs: 3}\ntest_samples: 100\nstealth: false\nhistograms: false\n"
        "schemes: [{name: advparams, options: {max_params: 400}}]\nattacks: [{name: prune, grid: {rate: [0.5]}}]\n"
    )
    out = tmp_path / "run"
    args = ["evaluate-protection", "--config", cfg, "--out", out, "--report-dir", tmp_path / "rep", "--no-plots"]
    code, _, err = run(capsys, *args, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    clean = [r for r in rows if r["kind"] == "clean"]
    lock = [r for r in rows if r["kind"] == "lock"]
    assert clean and clean[0]["accuracy"] > 0.5 and lock and lock[0]["accuracy"] <= 0.2
