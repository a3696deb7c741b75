"""Result rows: JSON lines that survive a crash."""

import pytest

from advparams.errors import AdvParamsError
from advparams.evaluation import ResultRow, RowWriter, read_rows


def test_round_trip(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    w = RowWriter(path)
    rows = [
        ResultRow("t", "clean", 0, accuracy=0.9),
        ResultRow("t", "attack", 1, "advparams", "prune", {"rate": 0.5}, 0.2, {"suspects": [1, 2]}, 0.5),
    ]
    for r in rows:
        w.write(r)
    assert read_rows(path) == rows
    assert rows[1].key == ("attack", 1, "advparams", "prune", '{"rate": 0.5}')


def test_a_cut_last_line_is_dropped_and_trimmed(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    w = RowWriter(path)
    w.write(ResultRow("t", "clean", 0, accuracy=0.9))
    with open(path, "a") as fh:
        fh.write('{"run": "t", "kind": "lock", "se')  # a crash mid-line
    assert len(read_rows(path)) == 1
    w2 = RowWriter(path)  # trims the partial line
    w2.write(ResultRow("t", "clean", 1, accuracy=0.8))
    assert [r.seed for r in read_rows(path)] == [0, 1]


def test_a_bad_line_in_the_middle_is_an_error(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"nope": 1}\n' + ResultRow("t", "clean", 0).to_json() + "\n")
    with pytest.raises(AdvParamsError, match="line 1"):
        read_rows(path)


def test_unknown_kind_and_nan_refused() -> None:
    with pytest.raises(ValueError):
        ResultRow("t", "weird", 0)
    with pytest.raises(ValueError):
        ResultRow("t", "clean", 0, accuracy=float("nan")).to_json()
