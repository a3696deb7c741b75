"""Under `make test` (ADVPARAMS_REQUIRE_DATA=1) missing real data fails the slow tier with
one line saying what to install; elsewhere (`make test-fast`, a bare pytest) it skips."""

from __future__ import annotations

import pytest

from tests.slow import realdata


def test_missing_data_fails_when_required_and_skips_otherwise(monkeypatch) -> None:
    monkeypatch.setattr(realdata, "find_dir", lambda split, root: None)
    monkeypatch.setenv("ADVPARAMS_REQUIRE_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="install Debian's dataset-fashion-mnist"):
        realdata.require_fashion_mnist()
    monkeypatch.delenv("ADVPARAMS_REQUIRE_DATA")
    with pytest.raises(pytest.skip.Exception, match="ADVPARAMS_DATA"):
        realdata.require_fashion_mnist()
    monkeypatch.setattr(realdata, "find_dir", lambda split, root: f"/data/{split}")
    realdata.require_fashion_mnist()  # present: nothing happens


def test_make_test_requires_the_data() -> None:
    from pathlib import Path

    make = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    test_rule = make.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "ADVPARAMS_REQUIRE_DATA=1" in test_rule
