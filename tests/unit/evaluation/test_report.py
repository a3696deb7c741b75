"""Reports are rebuilt from rows alone, and their numbers are the rows' numbers."""

import pytest

from advparams.errors import AdvParamsError, OutputExistsError
from advparams.evaluation import ResultRow, config_from_mapping
from advparams.reports import MARKER, build_report, fmt_num, fmt_pct, mean_std, write_report

CFG = config_from_mapping(
    {
        "name": "hand",
        "dataset": "synthetic",
        "model": "lenet",
        "seeds": [0, 1],
        "schemes": [{"name": "advparams"}],
        "attacks": [{"name": "finetune", "grid": {"data_fraction": [0.1]}}],
    }
)


def hand_rows():
    rows = []
    for seed, (clean, locked, tuned, scratch) in enumerate([(0.9, 0.1, 0.8, 0.7), (0.8, 0.2, 0.6, 0.7)]):
        rows += [
            ResultRow("hand", "clean", seed, accuracy=clean),
            ResultRow(
                "hand",
                "lock",
                seed,
                "advparams",
                accuracy=locked,
                metrics={
                    "params_changed": 10 + seed,
                    "proportion_percent": 0.01,
                    "unlocked_accuracy": clean,
                    "bit_exact": True,
                },
                seconds=2.0,
            ),
            ResultRow("hand", "baseline", seed, "scratch", "finetune", {"data_fraction": 0.1}, scratch),
            ResultRow("hand", "attack", seed, "advparams", "finetune", {"data_fraction": 0.1}, tuned, seconds=1.0),
        ]
    rows.append(
        ResultRow(
            "hand", "session", -1, setting={"started": "x"}, seconds=90.0, metrics={"environment": {"cpu_count": 2}}
        )
    )
    return rows


def test_mean_std_and_formatting() -> None:
    assert mean_std([0.5]) == (0.5, 0.0)
    m, s = mean_std([1.0, 3.0])
    assert m == 2.0 and s == pytest.approx(2**0.5)
    assert fmt_pct([0.1, 0.2]) == "15.00 ± 7.07"
    assert fmt_pct([None]) == "–" and fmt_num([3.0]) == "3.00"
    with pytest.raises(ValueError):
        mean_std([])


def test_counts_print_as_integers() -> None:
    assert fmt_num([61706], 1) == "61706" and fmt_num([61706, 61706], 1) == "61706 ± 0"
    assert fmt_num([10, 11], 1) == "10.5 ± 0.7" and fmt_num([12, 10], 1) == "11 ± 1.4"
    assert fmt_num([2.0], 2) == "2.00"  # a time is not a count, even a whole one
    one_seed = [r for r in hand_rows() if r.seed in (0, -1)]
    lock = next(r for r in one_seed if r.kind == "lock")
    rows = [r for r in one_seed if r.kind != "lock"] + [
        ResultRow("hand", "lock", 0, "advparams", accuracy=0.1, metrics={**lock.metrics, "params_changed": 61706})
    ]
    line = next(ln for ln in build_report(rows, CFG).splitlines() if ln.startswith("| advparams | 90.00"))
    assert "| 61706 | 61706 |" in line and "61706.0" not in line


def test_tables_hold_the_rows_numbers() -> None:
    text = build_report(hand_rows(), CFG, command="advparams evaluate-protection --config x")
    assert text.splitlines()[0] == MARKER
    lock_line = next(ln for ln in text.splitlines() if ln.startswith("| advparams | 85.00"))
    # clean 85 ± 7.07, locked 15 ± 7.07, unlocked 85, exact, 10.5 ± 0.71 changed (10 / 11)
    assert "| 85.00 ± 7.07 | 15.00 ± 7.07 | 85.00 ± 7.07 | yes | 10.5 ± 0.7 | 10 / 11 |" in lock_line
    ft = next(ln for ln in text.splitlines() if ln.startswith("| advparams | data_fraction=0.1"))
    cells = [c.strip() for c in ft.strip("|").split("|")]
    # after 70 ± 14.14; recovered (+70, +40) = 55 ± 21.21; scratch 70 ± 0; advantage (+10, -10) = 0 ± 14.14
    assert cells[3] == "70.00 ± 14.14"
    assert cells[4] == "55.00 ± 21.21"
    assert cells[5] == "70.00 ± 0.00"
    assert cells[6] == "0.00 ± 14.14"
    assert "1.5 min" in text and "advparams evaluate-protection --config x" in text


def test_write_report_from_a_run(tiny_run, tmp_path) -> None:
    out, _ = tiny_run
    dest = tmp_path / "report"
    path = write_report(out, dest, command="cmd")
    text = path.read_text()
    assert "## Attack: finetune" in text and "## Stealth" in text and "advantage (pp)" in text
    pngs = sorted(p.name for p in (dest / "plots").glob("*.png"))
    assert {"budget.png", "finetune.png", "key-leak.png", "hist-advparams.png"} <= set(pngs)
    assert all((dest / "plots" / p).stat().st_size > 1000 for p in pngs)
    assert (dest / "results.jsonl").read_bytes() == (out / "results.jsonl").read_bytes()
    # Rebuilding gives the same tables.
    assert write_report(out, dest, command="cmd").read_text() == text


def test_foreign_report_is_not_overwritten(tiny_run, tmp_path) -> None:
    out, _ = tiny_run
    (tmp_path / "report.md").write_text("# my notes\n")
    with pytest.raises(OutputExistsError):
        write_report(out, tmp_path, plots=False)
    assert (tmp_path / "report.md").read_text() == "# my notes\n"
    (tmp_path / "report.md").unlink()
    (tmp_path / "results.jsonl").write_text("mine\n")  # nor any other file of the user's
    with pytest.raises(OutputExistsError, match="never replaced"):
        write_report(out, tmp_path, plots=False)
    assert (tmp_path / "results.jsonl").read_text() == "mine\n"
    (tmp_path / "results.jsonl").unlink()
    write_report(out, tmp_path, plots=False)
    assert (tmp_path / "report.md").read_text().startswith(MARKER)
    write_report(out, tmp_path, plots=False)  # its own earlier report is replaced


def test_not_a_run(tmp_path) -> None:
    with pytest.raises(AdvParamsError, match="not an evaluation run"):
        write_report(tmp_path)
