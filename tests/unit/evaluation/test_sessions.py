"""Every session of a run leaves its ``session`` row, even one stopped by Ctrl-C, with the
command that started it; the report counts every session and prints the commands."""

import pytest
import yaml

from advparams.evaluation import ResultRow, Study, Unit, config_from_mapping, evaluate_protection, harness, open_run
from advparams.reports import build_report, write_report
from tests.unit.cli_helpers import run

RAW = {"name": "s", "dataset": "synthetic", "model": "lenet", "seeds": [0], "schemes": [{"name": "random"}]}


class _Toy(Study):
    """Two quick units; the second raises KeyboardInterrupt while ``stop`` holds."""

    name = "toy"
    stop = False

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def units(self) -> list[Unit]:
        return [Unit("toy/first", self.name), Unit("toy/second", self.name, deps=("toy/first",))]

    def run(self, unit: Unit) -> list[ResultRow]:
        if unit.id == "toy/second" and _Toy.stop:
            raise KeyboardInterrupt
        return [self.ctx.row("clean", 0 if unit.id == "toy/first" else 1, accuracy=0.5)]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(harness, "studies", lambda: (_Toy,))
    monkeypatch.setattr(_Toy, "stop", False)
    return _Toy


def test_an_interrupted_session_keeps_its_time_and_the_report_counts_it(toy, tmp_path) -> None:
    cfg, out = config_from_mapping(RAW), tmp_path / "run"
    toy.stop = True
    with pytest.raises(KeyboardInterrupt):
        evaluate_protection(cfg, out, device="cpu", command="advparams evaluate-protection --config a.yaml")
    rows = open_run(out).rows()
    (stopped,) = [r for r in rows if r.kind == "session"]
    assert stopped.metrics["interrupted"] is True and stopped.metrics["stopped_by"] == "KeyboardInterrupt"
    assert stopped.seconds > 0 and stopped.metrics["units_run"] == 1
    assert stopped.metrics["command"] == "advparams evaluate-protection --config a.yaml"
    assert [r.seed for r in rows if r.kind == "clean"] == [0]

    toy.stop = False
    rows = evaluate_protection(cfg, out, device="cpu", command="advparams evaluate-protection --config b.yaml")
    sessions = [r for r in rows if r.kind == "session"]
    assert len(sessions) == 2 and "interrupted" not in sessions[1].metrics
    assert sessions[1].metrics["units_run"] == 1 and [r.seed for r in rows if r.kind == "clean"] == [0, 1]

    text = build_report(rows, cfg)
    total = sum(r.seconds for r in sessions) / 60
    assert f"**Wall-clock time of the whole evaluation: {total:.1f} min** over 2 session(s)" in text
    assert "; 1 interrupted)" in text
    made = text.split("Made with:", 1)[1].split("```")[1].strip().splitlines()
    assert made == ["advparams evaluate-protection --config a.yaml", "advparams evaluate-protection --config b.yaml"]
    assert "--config x" in build_report(rows, cfg, command="--config x")  # --made-with wins
    assert "--config a.yaml" not in build_report(rows, cfg, command="--config x")


def test_an_error_in_a_unit_also_leaves_the_session_row(toy, tmp_path, monkeypatch) -> None:
    def fail(self, unit):
        raise RuntimeError("boom")

    monkeypatch.setattr(_Toy, "run", fail)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        evaluate_protection(config_from_mapping(RAW), out, device="cpu")
    (row,) = [r for r in open_run(out).rows() if r.kind == "session"]
    assert row.metrics["stopped_by"] == "RuntimeError" and "command" not in row.metrics


def test_report_reprints_the_stored_command(toy, tmp_path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(RAW))
    out = tmp_path / "run"
    argv = ["evaluate-protection", "--config", str(config), "--out", str(out), "--no-plots", "--device", "cpu"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    command = "advparams " + " ".join(argv)
    (session,) = [r for r in open_run(out).rows() if r.kind == "session"]
    assert session.metrics["command"] == command
    assert command in (out / "report.md").read_text()

    (out / "report.md").unlink()
    code, _, err = run(capsys, "report", out, "--no-plots")
    assert code == 0, err
    assert f"Made with:\n\n```\n{command}\n```" in (out / "report.md").read_text()
    code, _, err = run(capsys, "report", out, "--no-plots", "--made-with", "by hand")
    text = (out / "report.md").read_text()
    assert code == 0 and "```\nby hand\n```" in text and command not in text
    # the command given is kept in the run folder: the next rebuild needs no flag
    assert (out / "made-with.txt").read_text() == "by hand\n"
    code, _, err = run(capsys, "report", out, "--no-plots", "--report-dir", str(tmp_path / "r"))
    assert code == 0 and (tmp_path / "r" / "report.md").read_text() == text
    assert (tmp_path / "r" / "made-with.txt").read_text() == "by hand\n"  # the report folder stands alone


def test_a_run_from_before_commands_prints_none(toy, tmp_path) -> None:
    out = tmp_path / "run"
    evaluate_protection(config_from_mapping(RAW), out, device="cpu")
    assert "Made with" not in write_report(out, plots=False).read_text()
