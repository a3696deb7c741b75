"""The real evaluation on the engine: a tiny synthetic config gives the same rows with the
serial executor and with Ray (2 local workers), and a run killed part-way (SIGKILL)
resumes with no row lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advparams.evaluation import RayExecutor, config_from_mapping, evaluate_protection, open_run

TINY = {
    "name": "tiny-engine",
    "dataset": "synthetic",
    "model": "lenet",
    "seeds": [0, 1],
    "train": {"epochs": 1},
    "test_samples": 200,
    "null_models": 2,
    "users": 2,
    "schemes": [{"name": "advparams"}, {"name": "random", "match_params": "advparams"}],
    "attacks": [
        {"name": "finetune", "options": {"epochs": 1}, "grid": {"data_fraction": [0.05]}},
        {"name": "prune", "grid": {"rate": [0.5]}},
    ],
    "watermarks": [{"name": "additional-class", "options": {"num_keys": 10, "epochs": 1}}],
    "budgets": [2],
}


LOCKS_ONLY = {k: v for k, v in TINY.items() if k not in ("watermarks", "null_models", "users")}


def _measured(rows) -> dict:
    """Every row but the session's: its key -> what it measured (times left out)."""
    out = {}
    for r in rows:
        if r.kind != "session":
            metrics = {k: v for k, v in r.metrics.items() if k not in ("info", "seconds")}
            out[r.key] = (r.accuracy, repr(metrics))
    return out


@pytest.mark.slow
def test_ray_with_two_workers_gives_the_rows_of_the_serial_run(tmp_path) -> None:
    cfg = config_from_mapping(TINY)
    serial = evaluate_protection(cfg, tmp_path / "serial", device="cpu")
    ray_rows = evaluate_protection(cfg, tmp_path / "ray", device="cpu", executor=RayExecutor(2))
    a, b = _measured(serial), _measured(ray_rows)
    assert len(a) == len(serial) - 1 and set(a) == set(b)
    assert {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}  # every accuracy
    assert a == b  # and every other measured number
    session = [r for r in ray_rows if r.kind == "session"][0]
    assert session.metrics["executor"] == {"name": "ray", "workers": 2, "threads": 1, "cluster": False}
    assert session.metrics["units_run"] == session.metrics["units"] > 20


CLI = [sys.executable, "-m", "advparams", "evaluate-protection", "--no-plots", "--device", "cpu"]


@pytest.mark.slow
def test_a_run_killed_part_way_resumes_with_no_row_lost_or_doubled(tmp_path) -> None:
    config = tmp_path / "tiny.yaml"
    import yaml

    config.write_text(yaml.safe_dump(LOCKS_ONLY))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    child = subprocess.Popen([*CLI, "--config", config, "--out", out], env=env, stderr=subprocess.DEVNULL)
    try:  # kill it once some units are done, well before the end
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            units = out / "units.jsonl"
            if units.exists() and len(units.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    before = [r for r in open_run(out).rows() if r.kind != "session"]
    assert before and not any(r.kind == "session" for r in open_run(out).rows())
    done = subprocess.run([*CLI, "--config", config, "--out", out], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [r for r in open_run(out).rows() if r.kind != "session"]
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))  # nothing doubled
    reference = evaluate_protection(config_from_mapping(LOCKS_ONLY), tmp_path / "ref", device="cpu")
    assert _measured(rows) == _measured(reference)  # nothing lost, and the same numbers
    assert {r.key for r in before} <= set(keys)


def _wait_for_units(child: subprocess.Popen, units: Path, count: int) -> None:
    deadline = time.monotonic() + 600  # a hang guard for a loaded machine, not a speed target
    while time.monotonic() < deadline and child.poll() is None:
        if units.exists() and len(units.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    done = len(units.read_text().splitlines()) if units.exists() else 0
    state = f"ended with exit {child.returncode}" if child.poll() is not None else "hung for 600 s (hang guard)"
    raise AssertionError(f"the run {state} after {done} of the {count} units awaited, before it could be interrupted")


@pytest.mark.slow
def test_ctrl_c_keeps_the_sessions_time_and_the_report_counts_both_sessions(tmp_path) -> None:
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(LOCKS_ONLY))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    # SIGINT as a terminal gives it: a pytest-xdist worker ignores SIGINT, and a child would
    # inherit that (Python then installs no KeyboardInterrupt handler)
    child = subprocess.Popen(
        [*CLI, "--config", config, "--out", out],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for_units(child, out / "units.jsonl", 3)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130 and "interrupted" in err
    (first,) = [r for r in open_run(out).rows() if r.kind == "session"]
    assert first.metrics["interrupted"] is True and first.metrics["stopped_by"] == "KeyboardInterrupt"
    assert 0 < first.metrics["units_run"] < first.metrics["units"]
    # the session's time is kept: at least the time its own rows took (serial executor)
    before = [r for r in open_run(out).rows() if r.kind != "session"]
    assert 0 < sum(r.seconds or 0.0 for r in before) <= first.seconds
    done = subprocess.run([*CLI, "--config", config, "--out", out], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    sessions = [r for r in open_run(out).rows() if r.kind == "session"]
    assert len(sessions) == 2 and sessions[0] == first
    report = (out / "report.md").read_text()
    total = sum(r.seconds for r in sessions) / 60
    assert f"{total:.1f} min** over 2 session(s)" in report and "1 interrupted" in report


@pytest.mark.slow
def test_ray_with_json_prints_one_json_object_and_nothing_on_stderr(tmp_path) -> None:
    import json

    import yaml

    config = tmp_path / "tiny.yaml"
    raw = {**LOCKS_ONLY, "seeds": [0], "attacks": [], "budgets": [], "schemes": [{"name": "random"}]}
    config.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    args = ["--config", config, "--out", tmp_path / "run", "--executor", "ray", "--workers", "1", "--json"]
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    summary = json.loads(done.stdout)  # exactly one object: anything else fails to parse
    assert summary["ok"] is True and summary["rows"] >= 3
