"""The tracing study on a tiny evaluation: the rows, what they hold and do not hold, the
config's checks, the report."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from advparams.checkpoint import load_checkpoint
from advparams.errors import ConfigError
from advparams.evaluation import config_from_mapping, evaluate_protection
from advparams.evaluation.context import RunContext
from advparams.evaluation.tracing import tracing_folder
from advparams.keys import unlock
from advparams.keys.io import load_key
from advparams.reports.markdown import build_report
from advparams.tracing import MarkConfig, issue_user_key

TINY_TRACE = {
    "name": "tiny-trace",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0],
    "train": {"epochs": 2},
    "test_samples": 300,
    "tracing": {
        "users": 12,
        "models": [{"model": "vgg", "options": {"width": 4}, "train": {"epochs": 2}, "label": "vgg4"}],
        "lock": {"draws": 1, "reproducible": True},
        "mark": {"positions": 1024},
        "queries": {"queries": 256},
        "query_pool": 300,
        "attacked_users": 2,
        "coalitions": 1,
        "colluders": [2, 3],
        "limits": [32, 256],
        "attacks": [
            {"name": "prune", "grid": {"rate": [0.3]}},
            {"name": "relock", "grid": {"scheme": ["hardened"]}},
            {"name": "adaptive"},
        ],
    },
}


@pytest.fixture(scope="module")
def trace_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trace") / "run"
    cfg = config_from_mapping(TINY_TRACE)
    return cfg, out, evaluate_protection(cfg, out, device="cpu")


def test_every_users_copy_is_measured_and_traced(trace_run) -> None:
    cfg, out, rows = trace_run
    x, y = RunContext(cfg, out, torch.device("cpu")).test.tensors()
    mark = MarkConfig(**TINY_TRACE["tracing"]["mark"])
    locks = {r.scheme: r for r in rows if r.kind == "trace-lock"}
    assert set(locks) == {"lenet", "vgg4"}
    for label, lock in locks.items():
        assert lock.metrics["copy_reproduced"] is True
        assert lock.metrics["locked_accuracy"] < lock.accuracy
        copies = [r for r in rows if r.kind == "trace-copy" and r.scheme == label]
        assert sorted(r.setting["user"] for r in copies) == [f"user{i:03d}" for i in range(12)]
        folder = tracing_folder(out, label, 0)
        key = load_key(folder / "owner.key")
        assert all(s.dither == 23 for s in key.shuffles)
        locked = load_checkpoint(folder / "locked").model
        with torch.no_grad():
            original = unlock(locked, key).eval()(x).argmax(1)
        assert lock.accuracy == pytest.approx(float((original == y).double().mean()), abs=1e-12)
        for r in copies:
            assert r.metrics["white"]["named_right"] and r.metrics["white"]["innocents"] == 0
            assert set(r.metrics["black_by_queries"]) == {"32", "256"}
            # The copy the user's key unlocks, measured by hand: its answers to the test set
            # against the labels and against the original's answers.
            copy_ = unlock(locked, issue_user_key(locked, key, r.setting["user"], mark)).eval()
            with torch.no_grad():
                answers = copy_(x).argmax(1)
            assert r.accuracy == pytest.approx(float((answers == y).double().mean()), abs=1e-12)
            assert r.metrics["agreement"] == pytest.approx(float((answers == original).double().mean()), abs=1e-12)


def test_attacks_and_coalitions(trace_run) -> None:
    _, _, rows = trace_run
    attacked = [r for r in rows if r.kind == "trace-attack" and r.scheme == "lenet"]
    by_attack: dict[str, list] = {}
    for r in attacked:
        by_attack.setdefault(str(r.attack), []).append(r)
    assert {k: len(v) for k, v in by_attack.items()} == {"prune": 2, "relock": 2, "adaptive": 2, "collude": 2}
    # the adaptive attacker finds nothing to undo on a dithered lock; the copy stays traced
    assert all(r.metrics["found"] == 0 and r.metrics["white"]["named_right"] for r in by_attack["adaptive"])
    # a re-locked (shuffled) copy names nobody white-box, and never an innocent
    assert all(not r.metrics["white"]["named_right"] and r.metrics["white"]["innocents"] == 0
               for r in by_attack["relock"])  # fmt: skip
    members = [r.metrics["members"] for r in by_attack["collude"]]
    assert sorted(len(m) for m in members) == [2, 3]
    assert not set(members[0]) & set(members[1])  # disjoint coalitions
    assert not {"user000", "user001"} & set(members[0] + members[1])  # and apart from the attacked users
    assert all(r.metrics["white"]["innocents"] == 0 for r in attacked)


def test_rows_hold_no_key_material(trace_run) -> None:
    _, out, rows = trace_run
    key = load_key(tracing_folder(out, "lenet", 0) / "owner.key")
    text = "\n".join(r.to_json() for r in rows)
    assert key.secret.hex() not in text and "codeword" not in text and "indices" not in text


def test_report_has_the_tracing_tables(trace_run) -> None:
    cfg, _, rows = trace_run
    text = build_report(rows, cfg)
    assert "## Traceable keys" in text and "### The users' copies" in text and "| vgg4 | copy (no attack) |" in text
    assert "2 colluders (average)" in text and "Innocent users accused over all" in text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"attacks": [{"name": "distill"}]}, "name must be one of"),
        ({"attacks": [{"name": "noise", "grid": {"scale": [0]}}]}, "scale"),
        ({"attacks": [{"name": "relock", "grid": {"scheme": ["random"]}}]}, "scheme"),
        ({"attacks": [{"name": "adaptive", "options": {"x": 1}}]}, "unknown option"),
        ({"users": 5}, "needs 7 users"),
        ({"limits": [512]}, "limits"),
        ({"colluders": [1]}, "colluders"),
        ({"mark": {"strength": 2.0}}, "strength"),
        ({"queries": {"queries": 0}}, "queries"),
        ({"models": [{"model": "lenet"}]}, "own label"),
        ({"unknown": 1}, "unknown key"),
    ],
)
def test_config_checks(change, match) -> None:
    raw = copy.deepcopy(TINY_TRACE)
    raw["tracing"].update(change)
    with pytest.raises(ConfigError, match=match):
        config_from_mapping(raw)


def test_config_round_trips() -> None:
    cfg = config_from_mapping(TINY_TRACE)
    again = config_from_mapping(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.tracing is not None and again.tracing.models[0].title == "vgg4"


TEXT_TRACE = {
    "name": "tiny-text-trace",
    "dataset": "debian-descriptions",
    "model": "bert",
    "model_options": {"layers": 1, "hidden_size": 32, "heads": 2, "intermediate_size": 64},
    "seeds": [0],
    "train": {"epochs": 1, "batch_size": 64},
    "train_samples": 400,
    "test_samples": 200,
    "tracing": {
        "users": 6,
        "lock": {"draws": 1, "reproducible": True},
        "mark": {"positions": 1024},
        "black_box": False,
        "attacked_users": 1,
        "coalitions": 1,
        "colluders": [2],
        "attacks": [{"name": "prune", "grid": {"rate": [0.3]}}],
    },
}


def test_token_models_are_traced_white_box_only_when_black_box_is_off(tmp_path) -> None:
    pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")
    cfg = config_from_mapping(TEXT_TRACE)
    assert cfg.tracing.black_box is False and config_from_mapping(cfg.to_dict()).tracing.black_box is False
    assert "black_box" not in config_from_mapping(TINY_TRACE).to_dict()["tracing"]  # old configs unchanged
    rows = evaluate_protection(cfg, tmp_path / "run", device="cpu")
    cases = [r for r in rows if r.kind in ("trace-copy", "trace-attack")]
    assert {str(r.attack) for r in cases if r.kind == "trace-attack"} == {"prune", "collude"}
    assert all("black" not in r.metrics and "queries_needed" not in r.metrics for r in cases)
    copies = [r for r in cases if r.kind == "trace-copy"]
    assert len(copies) == 6 and all(r.metrics["white"]["named_right"] for r in copies)
    assert all(r.metrics["white"]["innocents"] == 0 for r in cases)
    assert not (tracing_folder(tmp_path / "run", "bert", 0) / "tracer.safetensors").exists()
    report = build_report(rows, cfg)
    assert "black-box tracing off" in report and "trace-queries.png" not in report


def test_black_box_tracing_of_token_ids_is_refused_before_the_run(tmp_path) -> None:
    pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")
    raw = copy.deepcopy(TEXT_TRACE)
    del raw["tracing"]["black_box"]
    with pytest.raises(ConfigError, match="set tracing.black_box: false"):
        evaluate_protection(config_from_mapping(raw), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()
