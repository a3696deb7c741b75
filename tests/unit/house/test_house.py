"""The house: a family added as one folder (here one file of the test suite) shows in a
config, the run's rows, the rebuilt report, ``advparams list`` and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from advparams.errors import ConfigError
from advparams.evaluation import config_from_mapping, open_run
from advparams.evaluation.rows import ResultRow
from advparams.house import Family, RowKind, Section, families, register_family, registered, row_kinds, section_keys
from tests.unit.cli_helpers import run

TOY = Path(__file__).with_name("toy_family.py")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-seed evaluation of the toy family alone, through the command line."""
    folder = tmp_path_factory.mktemp("toy")
    config = folder / "toy.yaml"
    raw = {
        "name": "toy-run",
        "dataset": "synthetic",
        "model": "lenet",
        "seeds": [0],
        "train": {"epochs": 1},
        "test_samples": 200,
        "imports": [str(TOY)],
        "toy": {"classes": 4},
    }
    config.write_text(yaml.safe_dump(raw))
    return config, str(folder / "run")


def test_a_toy_family_runs_reports_and_lists_without_a_shared_file(capsys, toy_run) -> None:
    config, out = toy_run
    code, stdout, err = run(capsys, "evaluate-protection", "--config", config, "--out", out, "--no-plots", "--json")
    assert code == 0, err
    assert "toy" in [f.name for f in families()] and "toy" in section_keys() and "toy-count" in row_kinds()
    rows = open_run(out).rows()
    toys = [r for r in rows if r.kind == "toy-count"]
    assert [r.seed for r in toys] == [0] and toys[0].metrics["classes"] == 4
    assert set(toys[0].metrics["predicted"]) <= {0, 1, 2, 3}
    written = yaml.safe_load((Path(out) / "config.yaml").read_text())
    assert written["toy"] == {"classes": 4}  # the section is written back by its own writer

    report = Path(json.loads(stdout)["report"]).read_text()
    assert "## Toy" in report and f"| 0 | {len(toys[0].metrics['predicted'])} / 4 |" in report
    code, _, _ = run(capsys, "report", out, "--no-plots")
    assert code == 0 and Path(json.loads(stdout)["report"]).read_text() == report  # rebuilt from the rows alone

    code, listed, _ = run(capsys, "list", "--json", "--import", TOY)
    assert code == 0 and [m["name"] for m in json.loads(listed)["toys"]] == ["class-count"]
    code, said, _ = run(capsys, "--import", TOY, "toy", "--classes", "5")
    assert code == 0 and said.strip() == "toy: 1 toy registered, 5 classes"


def test_the_toy_section_is_checked_like_the_houses_own(toy_run) -> None:
    config, _ = toy_run
    raw = yaml.safe_load(Path(config).read_text())
    with pytest.raises(ConfigError, match=r"toy.classes must be an integer in \[1, 10\]"):
        config_from_mapping({**raw, "toy": {"classes": 11}})
    assert config_from_mapping(raw).toy.classes == 4


def test_an_unknown_row_kind_fails_at_write_and_read(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown row kind"):
        ResultRow("r", "no-such-kind", 0)
    family = Family("kinds-for-a-while", order=999, what="a test's", kinds=(RowKind("for-a-while", ("n",)),))
    with registered(family):
        line = ResultRow("r", "for-a-while", 0).to_json()
    (tmp_path / "results.jsonl").write_text(line + "\n" + line + "\n")
    from advparams.errors import AdvParamsError
    from advparams.evaluation.rows import read_rows

    with pytest.raises(AdvParamsError, match="line 1: not a result row"):
        read_rows(tmp_path / "results.jsonl")


def test_a_family_cannot_take_anothers_name_kind_or_key() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_family(Family("locks", order=1, what="again"))
    with pytest.raises(ValueError, match="row kind 'lock' is taken"):
        register_family(Family("thief", order=1, what="x", kinds=(RowKind("lock"),)))
    with pytest.raises(ValueError, match="row kind 'session' is taken"):
        register_family(Family("thief", order=1, what="x", kinds=(RowKind("session"),)))
    with pytest.raises(ValueError, match="config key 'tracing' is taken"):
        register_family(Family("thief", order=1, what="x", section=Section("tracing", lambda raw, so_far: raw)))
    assert "thief" not in [f.name for f in families()]


def test_the_houses_own_families_each_declare_their_parts() -> None:
    names = [f.name for f in families()]
    assert names[:7] == ["models", "locks", "watermarks", "backdoors", "detection", "fingerprints", "tracing"]
    for family in families():
        assert family.kinds and family.study is not None and family.cli is not None, family.name
    kinds = [k.name for f in families() for k in f.kinds]
    assert len(kinds) == len(set(kinds))


def test_a_metric_its_kind_does_not_declare_fails_at_write_at_read_and_when_asked(tmp_path) -> None:
    from advparams.errors import AdvParamsError
    from advparams.evaluation.rows import read_rows

    row = ResultRow("r", "lock", 0, "advparams", metrics={"params_changed": 3})
    assert row.metrics["params_changed"] == 3 and row.metrics.get("bit_exact") is None
    assert "bit_exact" not in row.metrics
    with pytest.raises(KeyError, match="has no metric 'params_chnaged'"):
        row.metrics.get("params_chnaged")  # a report's typo is an error, not a blank cell
    with pytest.raises(KeyError, match="has no metric"):
        _ = "precison" in row.metrics
    with pytest.raises(ValueError, match="row kind 'lock' has no metric 'params_chnaged'"):
        ResultRow("r", "lock", 0, "advparams", metrics={"params_chnaged": 3})
    bad = row.to_json().replace('"params_changed"', '"params_chnaged"')
    (tmp_path / "results.jsonl").write_text(bad + "\n" + row.to_json() + "\n")
    with pytest.raises(AdvParamsError, match="line 1: not a result row .*has no metric 'params_chnaged'"):
        read_rows(tmp_path / "results.jsonl")
    detection = ResultRow("r", "detection", 0, metrics={"clean_entropy": 1.0, "triggered_l2": 2.0})
    assert detection.metrics["clean_entropy"] == 1.0  # a detector's own facts, by pattern
