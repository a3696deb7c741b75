"""The test configuration's own promises: the project's warnings fail a test, and an xfail
that passes is a failure."""

from __future__ import annotations

import warnings

import pytest


def test_a_warning_the_project_raises_is_an_error() -> None:
    with pytest.raises(UserWarning, match="from advparams"):
        warnings.warn_explicit("from advparams", UserWarning, "advparams/x.py", 1, module="advparams.x")
    with warnings.catch_warnings(record=True) as seen:  # another package's stays a warning
        warnings.warn_explicit("from elsewhere", UserWarning, "other/x.py", 1, module="other.x")
    assert [str(w.message) for w in seen] == ["from elsewhere"]


def test_xfail_is_strict(pytestconfig) -> None:
    assert pytestconfig.getini("xfail_strict") is True
