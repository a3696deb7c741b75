import pytest

from advparams.errors import OutputExistsError
from advparams.files import atomic_directory, atomic_write_bytes


def test_atomic_write_refuses_overwrite_without_force(tmp_path) -> None:
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"one")
    with pytest.raises(OutputExistsError, match="--force"):
        atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"one"
    atomic_write_bytes(p, b"two", force=True)
    assert p.read_bytes() == b"two"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.bin"]  # no temp files left


def test_missing_parent_is_an_error(tmp_path) -> None:
    with pytest.raises(OutputExistsError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "f", b"x")


def test_atomic_directory_failure_keeps_old_content(tmp_path) -> None:
    d = tmp_path / "ckpt"
    with atomic_directory(d) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(d, force=True) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("crash while writing")
    assert (d / "a").read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]
    with atomic_directory(d, force=True) as tmp:
        (tmp / "a").write_text("new")
    assert (d / "a").read_text() == "new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ckpt"]


def test_atomic_directory_refuses_existing(tmp_path) -> None:
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(OutputExistsError), atomic_directory(tmp_path / "ckpt"):
        pass


def test_permissions_follow_the_umask_and_keys_are_private(tmp_path) -> None:
    import os
    import stat

    from advparams.files import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "report.md", b"x")
        atomic_write_bytes(tmp_path / "secret.key", b"k", private=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_a_file_is_never_written_over_a_folder(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("x")
    with pytest.raises(OutputExistsError, match="folder"):
        atomic_write_bytes(tmp_path / "d", b"data", force=True)
    assert (tmp_path / "d" / "keep").read_text() == "x"


def test_force_replaces_only_a_file_of_its_own_format(tmp_path) -> None:
    import torch
    from safetensors.torch import save

    from advparams.files import is_safetensors_format

    ours = tmp_path / "q.safetensors"
    ours.write_bytes(save({"x": torch.zeros(2)}, metadata={"format": "advparams-trace-queries"}))
    other = tmp_path / "t.safetensors"
    other.write_bytes(save({"x": torch.zeros(2)}, metadata={"format": "advparams-trigger"}))
    assert is_safetensors_format(ours, "advparams-trace-queries", what="query file", limit=1 << 20)
    assert not is_safetensors_format(other, "advparams-trace-queries", what="query file", limit=1 << 20)
    assert not is_safetensors_format(ours, "advparams-trace-queries", what="query file", limit=16)  # too large
    (tmp_path / "plain.txt").write_text("not safetensors")
    (tmp_path / "folder").mkdir()
    for name in ("plain.txt", "folder", "missing"):
        assert not is_safetensors_format(tmp_path / name, "advparams-trace-queries", what="query file", limit=1 << 20)
    # and a writer given it as ``accept`` replaces the first file with --force, never the second
    atomic_write_bytes(ours, b"new", force=True, accept=lambda p: is_safetensors_format(
        p, "advparams-trace-queries", what="query file", limit=1 << 20))  # fmt: skip
    assert ours.read_bytes() == b"new"
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(other, b"new", force=True, accept=lambda p: is_safetensors_format(
            p, "advparams-trace-queries", what="query file", limit=1 << 20))  # fmt: skip


def test_check_tree_counts_every_value_and_bounds_the_depth() -> None:
    from advparams.errors import AdvParamsError
    from advparams.files import check_tree

    check_tree({"a": [1, 2, {"b": None}]}, what="doc", max_nodes=8)  # the dict, a, the list, 1, 2, {}, b, None
    with pytest.raises(AdvParamsError, match="more than 7 values"):
        check_tree({"a": [1, 2, {"b": None}]}, what="doc", max_nodes=7)
    shared = list(range(100))
    with pytest.raises(AdvParamsError, match="more than 1000 values"):
        check_tree([shared] * 20, what="doc", max_nodes=1000)  # a shared list counts at every use
    deep: list = []
    cur = deep
    for _ in range(5):
        cur.append([])
        cur = cur[0]
    check_tree(deep, what="doc", max_depth=6)
    with pytest.raises(AdvParamsError, match="nested too deeply"):
        check_tree(deep, what="doc", max_depth=5)
