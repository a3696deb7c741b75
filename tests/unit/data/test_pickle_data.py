import os
import pickle  # only to write test inputs

import numpy as np
import pytest

from advparams.data._pickle_data import loads_data
from advparams.errors import DataError


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


@pytest.mark.parametrize("protocol", range(0, 6))
def test_plain_data_round_trips(protocol) -> None:
    value = {
        b"data": np.arange(24, dtype=np.uint8).reshape(4, 6),
        b"labels": [1, 2, 3, 4],
        "s": "text",
        "f": np.arange(6, dtype=">f4").reshape(2, 3, order="F"),
        "t": (1.5, None, True, -7, 2**70),
    }
    out = loads_data(pickle.dumps(value, protocol=protocol))
    assert out.keys() == value.keys()
    assert out[b"labels"] == [1, 2, 3, 4] and out["s"] == "text" and out["t"] == (1.5, None, True, -7, 2**70)
    for k in (b"data", "f"):
        assert out[k].dtype == value[k].dtype and np.array_equal(out[k], value[k])


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_code_is_refused_not_run(protocol) -> None:
    with pytest.raises(DataError, match="not allowed"):
        loads_data(pickle.dumps({"x": _Evil()}, protocol=protocol))


def test_object_arrays_and_garbage_refused() -> None:
    with pytest.raises(DataError):
        loads_data(pickle.dumps(np.array([object()], dtype=object), protocol=2))
    with pytest.raises(DataError):
        loads_data(b"\x80\x02}q\x00(")
    with pytest.raises(DataError):
        loads_data(b"")
