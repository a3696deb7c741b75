"""Evaluation configs: validated in one place, every mistake one clear error."""

from pathlib import Path

import pytest

from advparams.errors import ConfigError, UnknownNameError
from advparams.evaluation import config_from_mapping, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def base(**extra):
    raw = {"name": "t", "dataset": "synthetic", "model": "lenet", "schemes": [{"name": "advparams"}]}
    raw.update(extra)
    return raw


def test_minimal_config_defaults() -> None:
    cfg = config_from_mapping(base())
    assert cfg.seeds == (0, 1, 2) and cfg.attacks == () and cfg.budgets == ()
    assert cfg.train.epochs == 10


def test_grid_and_cases_expand_in_order() -> None:
    cfg = config_from_mapping(
        base(
            attacks=[
                {"name": "prune", "grid": {"scope": ["global", "layer"], "rate": [0.1, 0.5]}},
                {"name": "clip", "cases": [{"low": 1, "high": 99}, {"low": 5, "high": 95}]},
                {"name": "key-leak"},
            ]
        )
    )
    prune, clip, leak = cfg.attacks
    assert list(prune.settings()) == [
        {"scope": "global", "rate": 0.1},
        {"scope": "global", "rate": 0.5},
        {"scope": "layer", "rate": 0.1},
        {"scope": "layer", "rate": 0.5},
    ]
    assert list(clip.settings()) == [{"low": 1, "high": 99}, {"low": 5, "high": 95}]
    assert list(leak.settings()) == [{}]


def test_round_trip_keeps_the_fingerprint() -> None:
    cfg = config_from_mapping(
        base(
            schemes=[{"name": "advparams"}, {"name": "random", "match_params": "advparams"}],
            attacks=[{"name": "prune", "grid": {"rate": [0.2]}}],
            budgets=[1, 5],
            checkpoints={0: "somewhere"},
        )
    )
    again = config_from_mapping(cfg.to_dict())
    assert again == cfg and again.fingerprint() == cfg.fingerprint()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"epochs": 3}, r"unknown key\(s\) epochs"),
        ({"schemes": [{"name": "advparams", "options": {"max_param": 3}}]}, "max_param"),
        ({"schemes": [{"name": "advparams", "options": {"max_params": 0}}]}, "max_params"),
        ({"schemes": []}, "no schemes"),
        ({"schemes": [{"name": "random", "match_params": "advparams"}, {"name": "advparams"}]}, "listed before it"),
        ({"schemes": [{"name": "advparams"}, {"name": "advparams"}]}, "listed twice"),
        ({"attacks": [{"name": "prune", "grid": {"rate": [0.5, 1.5]}}]}, "rate"),
        ({"attacks": [{"name": "prune", "grid": {"rate": [0.5]}, "cases": [{"rate": 0.1}]}]}, "both grid and cases"),
        ({"attacks": [{"name": "prune", "gird": {}}]}, "gird"),
        ({"seeds": [0, 0]}, "repeat"),
        ({"seeds": []}, "seeds"),
        ({"budgets": [0]}, "budgets"),
        ({"train": {"epoch": 2}}, "epoch"),
        ({"test_samples": -1}, "test_samples"),
    ],
)
def test_mistakes_are_config_errors(change, match) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(base(**change))


@pytest.mark.parametrize(
    "change", [{"dataset": "mnist"}, {"model": "alexnet"}, {"schemes": [{"name": "x"}]}, {"attacks": [{"name": "y"}]}]
)
def test_unknown_names_list_the_known_ones(change) -> None:
    with pytest.raises(UnknownNameError):
        config_from_mapping(base(**change))


def test_yaml_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)
    # yaml.safe_load: a Python object tag is refused, not constructed.
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        load_config(evil)


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "gtsrb"])
def test_shipped_configs_are_valid(name) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.seeds == (0, 1, 2)
    assert [s.name for s in cfg.schemes] == ["advparams", "random", "sfge", "nnsplitter"]
    names = {a.name for a in cfg.attacks}
    assert {"finetune", "prune", "retrace", "outlier-reset", "key-leak", "clip", "relabel"} <= names
    ft = next(a for a in cfg.attacks if a.name == "finetune")
    assert [s["data_fraction"] for s in ft.settings()] == [0.01, 0.05, 0.1, 0.2]
    prune = next(a for a in cfg.attacks if a.name == "prune")
    assert {s["scope"] for s in prune.settings()} == {"global", "layer"}
    assert sorted({s["rate"] for s in prune.settings()}) == [round(0.1 * i, 1) for i in range(1, 10)]
    leak = next(a for a in cfg.attacks if a.name == "key-leak")
    assert [s["fraction"] for s in leak.settings()] == [0.1, 0.3, 0.5, 0.7, 0.9]


def test_overrides_replace_top_level_keys() -> None:
    cfg = load_config(CONFIGS / "fashion-mnist.yaml", {"seeds": [5]})
    assert cfg.seeds == (5,)


def test_every_shipped_config_loads() -> None:
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert {"hardened-fashion-mnist", "watermarks-fashion-mnist", "watermarks-fashion-mnist-vgg"} <= set(names)
    for name in names:
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert (
            ((cfg.schemes or cfg.watermarks) and cfg.attacks)
            or (cfg.backdoors and cfg.backdoors.attacks)
            or (cfg.tracing and cfg.tracing.attacks)
            # locks measured and users' copies traced, the head start measured apart
            # (configs/transformers-*.yaml)
            or (cfg.schemes and cfg.tracing and cfg.tracing.users)
        ), name


def test_the_tracing_config_covers_the_issue() -> None:
    # LeNet-5 and the VGG-style net, 3 seeds, 100 users; fine-tuning 1/5/10 %, pruning 30/50 %,
    # weight noise, re-locking, the adaptive attacker, 2- and 3-colluder averages
    cfg = load_config(CONFIGS / "tracing-fashion-mnist.yaml")
    t = cfg.tracing
    assert t is not None and cfg.model == "lenet" and [m.model for m in t.models] == ["vgg"]
    assert cfg.seeds == (0, 1, 2) and t.users == 100 and t.colluders == (2, 3)
    settings = {a.name: [s for s in a.settings()] for a in t.attacks}
    assert [s["data_fraction"] for s in settings["finetune"]] == [0.01, 0.05, 0.1]
    assert [s["rate"] for s in settings["prune"]] == [0.3, 0.5]
    assert settings["noise"] and settings["adaptive"] == [{}]
    assert {s["scheme"] for s in settings["relock"]} == {"advparams", "hardened"}


def test_backdoor_configs_cover_the_issue() -> None:
    # Every backdoor and baseline; N = 3 in both DCT modes; the compression-resistant
    # backdoor against the same trigger trained plainly, one codec held out of training;
    # PTB against no PTB at 0.5 % and 5 %; 3 seeds; LeNet-5 and the VGG-style net.
    from advparams.backdoors import BACKDOORS

    for name, dataset, model in (
        ("backdoors-fashion-mnist", "fashion-mnist", "lenet"),
        ("backdoors-fashion-mnist-colour", "fashion-mnist-colour", "vgg"),
    ):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        section = cfg.backdoors
        assert section is not None and (cfg.dataset, cfg.model, len(cfg.seeds)) == (dataset, model, 3)
        assert {s.name for s in section.attacks} == set(BACKDOORS.names())
        dct = {s.options["mode"]: s for s in section.attacks if s.name == "dct"}
        assert set(dct) == {"n-to-n", "n-to-one"} and all(s.options["triggers"] == 3 for s in dct.values())
        (resistant,) = [s for s in section.attacks if s.name == "compression-resistant"]
        assert set(section.codecs) - set(resistant.options["codecs"])  # a codec held out of training
        assert section.spec(str(resistant.compare)).name == "blend" and "compression" in section.spec("blend").measure
        assert list(section.qualities) == [10, 30, 50, 70, 90]
        rates = {
            (s.options["poison_rate"], s.options.get("physical", True)) for s in section.attacks if s.name == "ptb"
        }
        assert rates == {(0.005, True), (0.005, False), (0.05, True), (0.05, False)}


def test_watermark_configs_cover_the_issue() -> None:
    # Issue 5: every registered watermark, at least 5 null models, a stated rate, and the
    # attacks the issue names, on LeNet-5 and on the VGG-style net, 3 seeds.
    from advparams.watermarks import WATERMARKS

    for name, model in (("watermarks-fashion-mnist", "lenet"), ("watermarks-fashion-mnist-vgg", "vgg")):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.model == model and len(cfg.seeds) == 3 and cfg.null_models >= 5 and 0 < cfg.fpr < 1e-3
        assert sorted(w.name for w in cfg.watermarks) == WATERMARKS.names()
        assert {a.name for a in cfg.attacks} >= {"finetune", "prune", "query-modify", "overwrite", "gan-removal"}
        assert cfg.lock_with


def test_detection_configs_cover_the_issue() -> None:
    # Issue 14: every detector against every backdoor (BadNets and Blend too), 3 seeds, on
    # LeNet-5 and the VGG-style net; at least 5 clean models for Neural Cleanse; the
    # calibrated 5 % and 1 % rates; the training-set mode; detector evasion on every watermark.
    from advparams.backdoors import BACKDOORS
    from advparams.detectors import DETECTORS
    from advparams.watermarks import WATERMARKS

    for name, dataset, model in (
        ("detection-fashion-mnist", "fashion-mnist", "lenet"),
        ("detection-fashion-mnist-colour", "fashion-mnist-colour", "vgg"),
    ):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.backdoors is not None and cfg.detection is not None
        assert (cfg.dataset, cfg.model, len(cfg.seeds)) == (dataset, model, 3)
        assert {s.name for s in cfg.backdoors.attacks} == set(BACKDOORS.names())
        assert {d.name for d in cfg.detection.detectors} == set(DETECTORS.names())
        assert not cfg.detection.backdoors  # every backdoor of the config is screened
        assert {0.05, 0.01} <= set(cfg.detection.frrs)
        assert len(cfg.seeds) + cfg.null_models >= 5
        assert cfg.detection.sanitise
    cfg = load_config(CONFIGS / "evasion-fashion-mnist.yaml")
    assert sorted(w.name for w in cfg.watermarks) == WATERMARKS.names() and len(cfg.seeds) == 3
    (evasion,) = [a for a in cfg.attacks if a.name == "detector-evasion"]
    assert {s["detector"] for s in evasion.settings()} == set(DETECTORS.names())


def test_fingerprint_configs_cover_the_issue() -> None:
    # Issue 15: InFIP and IPGuard on LeNet-5 and the VGG-style net, 3 seeds; positives by
    # fine-tuning 1/5/10 %, pruning 30/50/70 %, overwriting, distillation and the adaptive
    # attack; negatives >= 5 of the same architecture and >= 2 of another; the locked-then-
    # unlocked model; the additional-class watermark under the same attacks.
    from advparams.fingerprints import FINGERPRINTS

    for name, model, other in (
        ("fingerprints-fashion-mnist", "lenet", "vgg"),
        ("fingerprints-fashion-mnist-vgg", "vgg", "lenet"),
    ):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        section = cfg.fingerprints
        assert section is not None and (cfg.dataset, cfg.model, len(cfg.seeds)) == ("fashion-mnist", model, 3)
        assert {s.name for s in section.schemes} == set(FINGERPRINTS.names())
        assert section.negatives >= 5 and sum(o.count for o in section.other_models if o.model == other) >= 2
        settings = {(a.name, tuple(sorted(s.items()))) for a in cfg.attacks for s in a.settings()}
        assert {("finetune", (("data_fraction", f),)) for f in (0.01, 0.05, 0.1)} <= settings
        assert {("prune", (("rate", r),)) for r in (0.3, 0.5, 0.7)} <= settings
        assert {"overwrite", "distill", "relevance-evasion"} <= {a.name for a in cfg.attacks}
        assert cfg.lock_with and [w.name for w in cfg.watermarks] == ["additional-class"]
