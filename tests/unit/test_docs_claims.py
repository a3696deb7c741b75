"""The claims file: every number quoted in the docs' prose is rendered from its rows, a
changed digit is caught, and complete pages quote no number without a source."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import docs_claims  # noqa: E402


def test_every_claim_holds_on_the_committed_rows() -> None:
    claims, complete, _ = docs_claims.read_claims(ROOT)
    assert claims and "README.md" in complete
    assert docs_claims.check(ROOT) == []


def _copy(tmp_path: Path) -> Path:
    for name in ("README.md", "docs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def test_any_changed_digit_of_a_claim_fails_the_check(tmp_path) -> None:
    root = _copy(tmp_path)
    claims, _, _ = docs_claims.read_claims(root)
    tried = 0
    for c in claims:
        page = root / c.doc
        original = page.read_text(encoding="utf-8")
        rendered = docs_claims.render(c.text, docs_claims.load_rows(root / c.rows), c.where)
        where = docs_claims.flat(original).index(docs_claims.flat(rendered))
        flat = docs_claims.flat(original)
        for m in re.finditer(r"\d", docs_claims.flat(rendered)):
            k = where + m.start()
            changed = flat[:k] + str((int(flat[k]) + 1) % 10) + flat[k + 1 :]
            page.write_text(changed, encoding="utf-8")
            problems = docs_claims.check(root)
            assert any(c.doc in p and "does not say it" in p for p in problems), (c.doc, changed[k - 20 : k + 20])
            tried += 1
        page.write_text(original, encoding="utf-8")
    assert tried >= 20


def test_a_number_without_a_claim_on_a_complete_page_is_named(tmp_path) -> None:
    root = _copy(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nIt locks in 3.7 s and keeps 42 %.\n", encoding="utf-8")
    problems = docs_claims.check(root)
    assert len(problems) == 2 and "'3.7 s'" in problems[0] and "'42 %'" in problems[1]
    assert problems[0].startswith("README.md:") and "neither a claim nor quoted" in problems[0]


def test_placeholders_render_from_rows(tmp_path) -> None:
    rows = [{"m": "a", "x": 0.1234, "n": 1234, "k": {"s": 1}}, {"m": "a", "x": 0.2, "n": 10, "k": {"s": 2}}]
    assert docs_claims.render("{min x pct.1}-{max x pct.2}%", rows, {}) == "12.3-20.00%"
    assert docs_claims.render("{max n ,d} {sum n d} {count m d} {mean k.s .1}", rows, {"m": "a"}) == "1,234 1244 2 1.5"
    assert docs_claims.render("{one x .3 | k.s=2}", rows, {}) == "0.200"
    assert docs_claims.render("{max n-k.s d} {min x-n .1}", rows, {}) == "1233 -1233.9"
    with pytest.raises(docs_claims.ClaimError, match="disagree"):
        docs_claims.render("{one x .1}", rows, {})
    with pytest.raises(docs_claims.ClaimError, match="no row has x"):
        docs_claims.render("{min x .1 | m=b}", rows, {})
    with pytest.raises(docs_claims.ClaimError, match="unknown format"):
        docs_claims.render("{min x %}", rows, {})
    rated = [{"tpr": {"0.05": 0.5, "0.01": 0.25, "0": {"5": 9}}}]
    assert docs_claims.render("{one tpr.0.05 pct.1} {one tpr.0.01 pct.1} {one tpr.0.5 d}", rated, {}) == "50.0 25.0 9"
    with pytest.raises(docs_claims.ClaimError, match="no row has tpr.0.1"):
        docs_claims.render("{one tpr.0.1 .1}", rated, {})
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert docs_claims.load_rows(folder) == rows
