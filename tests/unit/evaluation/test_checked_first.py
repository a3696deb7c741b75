"""Every value of an evaluation config, and every file it names, is checked before any work
starts and before the run folder is made: a mistake is one ConfigError naming its place."""

import json

import pytest
import torch
from torch import nn

from advparams.errors import ConfigError
from advparams.evaluation import config_from_mapping, evaluate_protection, load_config
from advparams.evaluation.limits import MAX_SEEDS, MAX_SETTINGS, combined_limit
from advparams.models import MODELS
from tests.unit.cli_helpers import one_line_error, run


def base(**extra):
    raw = {"name": "t", "dataset": "synthetic", "model": "lenet", "seeds": [0], "schemes": [{"name": "random"}]}
    raw.update(extra)
    return raw


TRACING = {"users": 20, "attacked_users": 1, "coalitions": 1, "colluders": [2], "mark": {"positions": 64}}
BACKDOORS = {"attacks": [{"name": "badnets"}]}


@pytest.mark.parametrize(
    ("change", "place"),
    [
        ({"model_options": {"num_classes": -3}}, "model_options: "),  # the factory's (or registry's) own words
        ({"model_options": {"num_classes": 4}}, "model_options: lenet gives 4 class scores, but synthetic has 10"),
        ({"model_options": {"in_channels": 3}}, "model_options: lenet cannot take the synthetic inputs (1x16x16)"),
        ({"model_options": {"width": 8}}, "model_options: model 'lenet' got unknown option(s) width"),
        ({"model": "vgg", "model_options": {"width": 10**6}}, "model_options: vgg would have"),
        (
            {"tracing": {**TRACING, "models": [{"model": "vgg", "options": {"width": -1}}]}},
            "tracing.models[0].options: vgg cannot be built",
        ),
        (
            {"tracing": {**TRACING, "models": [{"model": "vgg", "train": {"epochs": 10**6}}]}},
            "tracing.models[0].train.epochs must be at most",
        ),
        ({"tracing": {**TRACING, "mark": {"positions": 10**6}}}, "tracing.mark.positions must be at most 10575"),
        (
            {"tracing": {**TRACING, "lock": {"include": ["nothing*"]}}},
            "tracing.lock or tracing.mark leave no weight of lenet",
        ),
        (
            {"tracing": {**TRACING, "mark": {"positions": 64, "include": ["nothing*"]}}},
            "tracing.mark.positions must be at most 0 for lenet",
        ),
        (
            {
                "fingerprints": {
                    "schemes": [{"name": "ipguard"}],
                    "other_models": [{"model": "vgg", "options": {"width": 0}}],
                }
            },
            "fingerprints.other_models[0].options: vgg cannot",
        ),
        ({"backdoors": {**BACKDOORS, "transformations": {"blur": [1.0, 1000]}}}, "backdoors.transformations.blur"),
        ({"backdoors": {**BACKDOORS, "transformations": {"noise": [float("nan")]}}}, "backdoors.transformations.noise"),
        (
            {"backdoors": {**BACKDOORS, "transformations": {"combined": [combined_limit() + 0.5]}}},
            "backdoors.transformations.combined",
        ),
        (
            {"backdoors": {"attacks": [{"name": "ptb", "options": {"blur": 1000.0}}]}},
            "backdoors.attacks[0].options: backdoor 'ptb': PTBConfig: blur must be in [0, 10]",
        ),
        ({"backdoors": {**BACKDOORS, "asr_samples": 10**9}}, "backdoors.asr_samples"),
        ({"schemes": [{"name": "advparams", "options": {"include": ["fc*"]}}]}, "schemes[0].options: no parameter"),
        (
            {
                "watermarks": [{"name": "additional-class"}],
                "lock_with": {"name": "random", "options": {"exclude": ["*"]}},
            },
            "lock_with.options: no parameter",
        ),
        ({"seeds": list(range(MAX_SEEDS + 1))}, "seeds lists"),
        ({"train": {"epochs": 10**6}}, "train.epochs must be at most"),
        ({"train": {"batch_size": 10**7}}, "train.batch_size must be at most"),
        ({"test_samples": 10**12}, "test_samples"),
        ({"budgets": list(range(1, 200))}, "budgets"),
        (
            {"attacks": [{"name": "prune", "grid": {"rate": [0.1] * 40, "scope": ["layer"] * 40}}]},
            f"attacks[0] has more than {MAX_SETTINGS} settings",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_its_place(change, place) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(base(**change))
    assert place in str(info.value)


def test_the_checks_leave_good_configs_alone() -> None:
    cfg = config_from_mapping(
        base(
            model="vgg",
            model_options={"width": 4},
            tracing={**TRACING, "models": [{"model": "lenet", "label": "small"}]},
            backdoors={**BACKDOORS, "transformations": {"blur": [10.0], "combined": [combined_limit()]}},
        )
    )
    assert cfg.model_options == {"width": 4} and cfg.tracing.models[0].title == "small"


class _NeedsEvenWidth(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size: int, width: int) -> None:
        super().__init__()
        if width % 2:
            raise ValueError("width must be even")
        self.fc = nn.Linear(in_channels * input_size * input_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.abs().sum()) < 0:  # a value read: the meta device cannot run this, the CPU can
            return x
        return self.fc(x.flatten(1))


def _even_net(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, width: int = 2) -> nn.Module:
    return _NeedsEvenWidth(num_classes, in_channels, input_size, width)


def test_a_registered_models_own_error_names_the_option(monkeypatch) -> None:
    monkeypatch.setitem(MODELS._items, "even-net-test", _even_net)  # registered for this test only
    config_from_mapping(base(model="even-net-test", model_options={"width": 4}))  # runs on the CPU: fine
    with pytest.raises(ConfigError, match=r"^model_options: even-net-test cannot be built .*width must be even"):
        config_from_mapping(base(model="even-net-test", model_options={"width": 3}))
    with pytest.raises(ConfigError, match=r"^fingerprints\.other_models\[0\]\.options: even-net-test"):
        config_from_mapping(
            base(
                fingerprints={
                    "schemes": [{"name": "ipguard"}],
                    "other_models": [{"model": "even-net-test", "options": {"width": 5}}],
                }
            )
        )


def test_a_key_written_twice_is_refused_with_its_lines(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: t\ndataset: synthetic\nmodel: lenet\nseeds: [0]\nschemes: [{name: random}]\nseeds: [1]\n")
    with pytest.raises(ConfigError, match=r"key 'seeds' appears twice in one mapping \(lines 4 and 6\)"):
        load_config(path)
    path.write_text("name: t\ndataset: synthetic\nmodel: lenet\nschemes:\n  - name: random\n    name: advparams\n")
    with pytest.raises(ConfigError, match=r"key 'name' appears twice .*lines 5 and 6"):
        load_config(path)
    # A key a merge brings in may still be overridden, as YAML intends.
    path.write_text(
        "name: t\ndataset: synthetic\nmodel: lenet\nschemes:\n  - &s {name: random, label: a}\n  - {<<: *s, label: b}\n"
    )
    assert [s.title for s in load_config(path).schemes] == ["a", "b"]
    # Tags stay refused: the loading is safe.
    path.write_text("name: !!python/object/apply:os.system ['true']\nname: t\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def _write_config(tmp_path, **change):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base(**change)))
    return path


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tracing": {**TRACING, "models": [{"model": "vgg", "options": {"width": -1}}]}}, "tracing.models[0].options"),
        ({"backdoors": {**BACKDOORS, "transformations": {"blur": [1000]}}}, "backdoors.transformations.blur"),
        ({"model_options": {"num_classes": -3}}, "model_options"),
        ({"data_dir": "/dev/zero"}, "data_dir '/dev/zero' is not a folder"),
        ({"checkpoints": {0: "/nonexistent/ckpt"}}, "checkpoints.0: checkpoint /nonexistent/ckpt does not exist"),
    ],
)
def test_the_command_refuses_before_making_the_run_folder(tmp_path, capsys, change, match) -> None:
    out = tmp_path / "run"
    cfg = _write_config(tmp_path, **change)
    code, stdout, err = run(
        capsys, "evaluate-protection", "--config", cfg, "--out", out, "--no-plots", "--device", "cpu"
    )
    one_line_error(code, err, match)
    assert "unexpected" not in err and not out.exists()


def test_checkpoints_and_data_are_checked_before_the_folder_is_made(tmp_path) -> None:
    out = tmp_path / "run"
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ({"checkpoints": {0: str(tmp_path / "missing")}}, "checkpoints.0: checkpoint .* does not exist"),
        ({"checkpoints": {0: str(empty)}}, "checkpoints.0: checkpoint .* has no model.json"),
        ({"data_dir": "/dev/zero"}, "data_dir '/dev/zero' is not a folder"),
        ({"data_dir": str(tmp_path / "nowhere")}, "data_dir .* does not exist"),
        ({"dataset": "cifar10", "model_options": {}}, "data_dir is needed"),
    ]
    described = tmp_path / "described"
    described.mkdir()
    (described / "model.json").write_text(
        json.dumps(
            {
                "format": "advparams-checkpoint",
                "version": 1,
                "architecture": "lenet",
                "arguments": {},
                "fingerprint": "x",
            }
        )
    )
    cases.append(({"checkpoints": {0: str(described)}}, "checkpoints.0: checkpoint .* has no model.safetensors"))
    for change, match in cases:
        with pytest.raises(ConfigError, match=match):
            evaluate_protection(config_from_mapping(base(**change)), out, device="cpu")
        assert not out.exists(), change
