"""What the slow tier shares: real Fashion-MNIST, required under `make test`."""

from __future__ import annotations

import os

import pytest

from advparams.data.fashion_mnist import find_dir

MISSING = (
    "real Fashion-MNIST not found: install Debian's dataset-fashion-mnist (`make data`) or set "
    "ADVPARAMS_DATA to a folder with its four IDX .gz files"
)


def require_fashion_mnist() -> None:
    """Fails the test when the real data is missing and ``ADVPARAMS_REQUIRE_DATA`` is set
    (``make test`` sets it, so CI cannot pass by skipping the slow tier); skips it otherwise."""
    if find_dir("train", None) is not None and find_dir("test", None) is not None:
        return
    if os.environ.get("ADVPARAMS_REQUIRE_DATA"):
        pytest.fail(MISSING, pytrace=False)
    pytest.skip(MISSING)
