"""The engine: dependency order, the serial and Ray executors give the same rows, a lost
worker's unit runs again, a unit's error stops the run, and a run killed part-way resumes
with no row lost or doubled."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from advparams.errors import AdvParamsError, ConfigError
from advparams.evaluation.engine import RayExecutor, Runner, SerialExecutor, Unit, order
from advparams.evaluation.run import RunFolder
from advparams.testing.engine import CountingStudy


def test_order_puts_dependencies_first_and_keeps_free_order() -> None:
    units = [Unit("c", "s", deps=("b",)), Unit("a", "s"), Unit("b", "s", deps=("a",)), Unit("d", "s")]
    assert [u.id for u in order(units)] == ["a", "b", "c", "d"]
    with pytest.raises(ConfigError, match="cycle"):
        order([Unit("a", "s", deps=("b",)), Unit("b", "s", deps=("a",))])
    with pytest.raises(ConfigError, match="no study makes"):
        order([Unit("a", "s", deps=("zz",))])
    with pytest.raises(ConfigError, match="both called"):
        order([Unit("a", "s"), Unit("a", "s")])


def _collect(executor, study) -> dict[str, list]:
    out: dict[str, list] = {}
    executor.run(study.units(), Runner([study]), lambda u, rows: out.setdefault(u.id, rows))
    return out


def _plain(rows_by_unit: dict[str, list]) -> dict[str, list]:
    return {k: [(r.kind, r.seed, r.attack, r.accuracy) for r in v] for k, v in rows_by_unit.items()}


def test_serial_and_ray_give_the_same_rows(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    serial = _collect(SerialExecutor(), CountingStudy(str(tmp_path / "a"), n=4))
    ray_rows = _collect(RayExecutor(2), CountingStudy(str(tmp_path / "b"), n=4))
    assert _plain(serial) == _plain(ray_rows) and len(serial) == 8
    assert all(
        v[0].accuracy == pytest.approx(serial[f"source/{k.split('/')[1]}"][0].accuracy ** 2)
        for k, v in serial.items()
        if k.startswith("square/")
    )


def test_ray_runs_a_lost_unit_again_and_stops_on_a_unit_error(tmp_path) -> None:
    study = CountingStudy(str(tmp_path), n=2, crash_once="square/1")
    rows = _collect(RayExecutor(2), study)
    assert (tmp_path / "crashed-square-1").exists() and len(rows) == 4
    with pytest.raises(AdvParamsError, match="fails on purpose"):
        _collect(RayExecutor(2), CountingStudy(str(tmp_path), n=2, fail="square/0"))


def test_ray_without_ray_installed_is_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(AdvParamsError, match=r"advparams\[distributed\]"):
        _collect(RayExecutor(2), CountingStudy(str(tmp_path), n=1))


CHILD = r"""
import os, signal, sys
from advparams.evaluation.engine import Runner, SerialExecutor
from advparams.evaluation.run import RunFolder
from advparams.testing.engine import CountingStudy
run = RunFolder(sys.argv[1])
run.units_path.touch()  # as RunFolder.prepare makes it
kill_after = int(os.environ.get("KILL_AFTER_ROWS", "-1"))
study = CountingStudy(sys.argv[1], n=6)
writer = run.writer()
count = [0]
def on_done(unit, rows):
    end = writer.write_many(rows)
    count[0] += 1
    if count[0] == kill_after:  # the rows are on disk, the unit is not yet recorded as done
        os.kill(os.getpid(), signal.SIGKILL)
    run.commit(unit.id, [], writer)  # records the unit as done at the current end
done = run.done_units()
SerialExecutor().run(study.units(), Runner([study]), on_done, done=done)
"""


@pytest.mark.parametrize("kill_after", [1, 4, 9, 12])
def test_a_killed_run_resumes_with_no_row_lost_or_doubled(tmp_path, kill_after) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "KILL_AFTER_ROWS": str(kill_after)}
    first = subprocess.run([sys.executable, "-c", CHILD, str(run_dir)], env=env, capture_output=True)
    assert first.returncode == (-signal.SIGKILL if kill_after <= 12 else 0), first.stderr
    run = RunFolder(run_dir)
    partial = run.done_units()
    assert len(partial) == kill_after - 1  # the killed unit is not done, its rows were cut off
    again = subprocess.run([sys.executable, "-c", CHILD, str(run_dir)], capture_output=True)
    assert again.returncode == 0, again.stderr
    rows = run.rows()
    keys = [(r.kind, r.seed, r.attack) for r in rows]
    assert len(keys) == len(set(keys)) == 12 and run.done_units() == {u.id for u in CountingStudy(".", n=6).units()}


def test_commit_then_done_units_round_trip(tmp_path) -> None:
    run = RunFolder(tmp_path)
    writer = run.writer()
    study = CountingStudy(str(tmp_path), n=1)
    rows = study.run(study.units()[0])
    run.commit("source/0", rows, writer)
    writer.write_many(rows)  # an interrupted unit's rows, not committed
    assert run.done_units() == {"source/0"} and len(run.rows()) == 1
    assert Path(run.results_path).read_bytes().count(b"\n") == 1


@pytest.mark.slow
def test_ray_joins_an_existing_cluster(tmp_path, monkeypatch) -> None:
    # What docs/evaluation.md shows: `ray start --head` on a machine, then --address, with
    # Ray's token authentication (on by default for `ray start` since Ray 2.59).
    import socket

    monkeypatch.setenv("RAY_AUTH_MODE", "token")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short (Ray's socket paths), and not /tmp/ray
    head = [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--block",
            f"--temp-dir={temp}"]  # fmt: skip
    # its own process group, stopped as a group at the end: `ray stop --force` would stop
    # every Ray on the machine, another test's (xdist) or a user's evaluation included
    started = subprocess.Popen(head, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a hang guard
        while started.poll() is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        assert started.poll() is None, (started.stderr.read() if started.stderr else b"")[-2000:]
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        executor = RayExecutor(2, address=f"127.0.0.1:{port}")
        assert executor.describe() == {"name": "ray", "workers": 2, "threads": None, "cluster": True}
        joined = _collect(executor, CountingStudy(str(tmp_path / "a"), n=3))
        serial = _collect(SerialExecutor(), CountingStudy(str(tmp_path / "b"), n=3))
        assert _plain(joined) == _plain(serial) and len(joined) == 6
    finally:
        os.killpg(started.pid, signal.SIGTERM)  # --block stops the processes it started
        try:
            started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(started.pid, signal.SIGKILL)
            started.wait()
        shutil.rmtree(temp, ignore_errors=True)
