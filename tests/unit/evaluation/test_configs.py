"""The shipped CIFAR-10 and GTSRB configs run end to end on tiny files in the official
formats (the real data sets cannot be had on the CI machines). Only the sizes are cut
(one seed, one epoch, a narrow net, small lock budgets, the first setting of each
attack); the schemes, the
attacks, the data loaders and the model are the config's own."""

from pathlib import Path

import pytest
import yaml

from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.reports import write_report
from tests.unit.data.helpers import write_cifar_python, write_gtsrb

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def shrunk(name: str, data_dir: Path) -> dict:
    raw = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    raw.update(seeds=[0], data_dir=str(data_dir), train={"epochs": 1, "batch_size": 8}, budgets=[1])
    raw["model_options"] = {**raw.get("model_options", {}), "width": 4}
    budgets = {"advparams": {"max_params": 10}, "nnsplitter": {"iterations": 5}}
    for s in raw["schemes"]:
        s["options"] = {**(s.get("options") or {}), **budgets.get(s["name"], {})}
    for a in raw["attacks"]:
        if "grid" in a:
            a["grid"] = {k: v[:1] for k, v in a["grid"].items()}
        if "cases" in a:
            a["cases"] = a["cases"][:1]
        a.setdefault("options", {})
        if a["name"] == "finetune":
            a["options"].update(epochs=1, data_fraction=0.5)
            a["grid"] = {}
        if a["name"] in ("retrace", "outlier-reset"):
            a["options"]["steps"] = 2
    return raw


@pytest.mark.parametrize("name", ["cifar10", "gtsrb"])
def test_config_runs_on_tiny_official_files(name, tmp_path) -> None:
    data = tmp_path / "data"
    if name == "cifar10":
        write_cifar_python(data, n=8)
    else:
        write_gtsrb(data, per_class=4)
    cfg = config_from_mapping(shrunk(name, data))
    assert cfg.dataset == name and cfg.model == "vgg"
    rows = evaluate_protection(cfg, tmp_path / "run", device="cpu")
    locks = {r.scheme: r for r in rows if r.kind == "lock"}
    assert set(locks) == {"advparams", "random", "sfge", "nnsplitter"}
    assert all(r.metrics["bit_exact"] for r in locks.values())
    attacked = {(r.scheme, r.attack) for r in rows if r.kind == "attack"}
    assert attacked == {(s, a.name) for s in locks for a in cfg.attacks}
    report = write_report(tmp_path / "run", plots=False).read_text()
    assert f"data set **{name}**".lower() in report.lower()


@pytest.mark.parametrize("name", ["cifar10", "gtsrb"])
def test_backdoor_config_runs_on_tiny_official_files(name, tmp_path) -> None:
    data = tmp_path / "data"
    if name == "cifar10":
        write_cifar_python(data, n=20)
    else:
        write_gtsrb(data, per_class=12)
    raw = yaml.safe_load((CONFIGS / f"backdoors-{name}.yaml").read_text())
    raw.update(seeds=[0], data_dir=str(data), train={"epochs": 1, "batch_size": 8}, model_options={"width": 4})
    raw["backdoors"].update(qualities=[30], transformations={"rotation": [10.0]})
    cfg = config_from_mapping(raw)
    assert cfg.dataset == name and cfg.model == "vgg"
    rows = evaluate_protection(cfg, tmp_path / "run", device="cpu")
    got = {r.scheme: r for r in rows if r.kind == "backdoor"}
    assert set(got) == {s.title for s in cfg.backdoors.attacks}
    assert len(got["dct-n2n"].metrics["asr"]) == 3 and got["dct-n2n"].metrics["info"]["targets"] == [0, 1, 2]
    assert set(got["compression-resistant"].metrics["compression"]) == {"jpeg", "jpeg2000", "webp"}
    report = write_report(tmp_path / "run", plots=False).read_text()
    assert "## Backdoors" in report and "**held out**" in report
