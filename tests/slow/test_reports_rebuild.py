"""Every committed evaluation report rebuilds byte for byte from its rows (slow tier:
a few seconds of plotting per folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advparams.reports import write_report

pytestmark = pytest.mark.slow

FOLDERS = sorted(p for p in (Path(__file__).resolve().parents[2] / "docs" / "evaluation").iterdir() if p.is_dir())


def test_there_are_committed_reports() -> None:
    assert len(FOLDERS) >= 10 and all((f / "report.md").is_file() for f in FOLDERS)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_a_committed_report_rebuilds_byte_identical(folder: Path, tmp_path: Path) -> None:
    out = write_report(folder, tmp_path / folder.name)
    assert out.read_bytes() == (folder / "report.md").read_bytes(), f"run `advparams report {folder}`"
    made = sorted(p.name for p in (tmp_path / folder.name / "plots").glob("*.png"))
    assert made == sorted(p.name for p in (folder / "plots").glob("*.png"))


def test_report_table_quotes_the_committed_reports_table() -> None:
    from advparams.errors import AdvParamsError
    from advparams.reports import report_table

    folder = next(f for f in FOLDERS if f.name == "hardened")
    text = (folder / "report.md").read_text().splitlines()
    start = text.index("## Locking")
    expected = []
    for line in text[start + 1 :]:
        if line.startswith("#") or (expected and not line.startswith("|")):
            break
        if line.startswith("|"):
            expected.append(line)
    assert len(expected) >= 3 and report_table(folder, "locking") == "\n".join(expected)
    with pytest.raises(AdvParamsError, match="no section 'Nope'.*its sections: .*Locking"):
        report_table(folder, "Nope")
    with pytest.raises(AdvParamsError, match="has 1 table"):
        report_table(folder, "Locking", number=2)
