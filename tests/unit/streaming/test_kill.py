"""A multi-shard ``lock`` and ``unlock`` of a Hugging Face folder, streamed tensor by tensor,
killed with SIGKILL at steps spread over their whole output stage (the file-system calls of
:mod:`tests.forked_child`, shard writes included): a locked folder is never at ``--out``
without its key at ``--key``, no shard is ever complete-looking but half-written, and the
next run completes."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from advparams.files import recover_interrupted_pair
from advparams.keys import load_key
from advparams.streaming import folder_fingerprint
from tests import forked

transformers = pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")

LOCK = ["lock", "src", "--scheme", "hardened", "--dataset", "python-stdlib", "--set", "num_samples=32",
        "--set", "check_samples=0", "--set", "draws=1", "--set", "dither=23", "--no-eval", "--allow-partial",
        "--out", "L", "--key", "k.key"]  # fmt: skip
UNLOCK = ["unlock", "L", "--key", "k.key", "--out", "U", "--no-eval"]


KILLED = (-signal.SIGKILL, 255)
"""How a killed child ends: -9, or 255 where the fork server could not pass its status on
(``multiprocessing.popen_forkserver``); the checks after each kill hold either way."""


def _child(argv: list[str], cwd: Path, kill_at: int) -> tuple[int, list[str]]:
    log = cwd / f"steps-{kill_at}.log"
    done = forked.run("command_killed_at", (argv, kill_at, str(log)), workdir=cwd, env={**os.environ})
    if done.returncode not in (0, *KILLED):
        print(done.stderr)
    steps = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return done.returncode, steps


def _source(base: Path) -> str:
    cfg = transformers.GPT2Config(vocab_size=256, n_positions=128, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(base / "src", max_shard_size="30KB")
    assert len(list((base / "src").glob("*.safetensors"))) >= 5
    return folder_fingerprint(base / "src")


def _no_partial_files(base: Path) -> None:
    for p in base.rglob("*"):
        assert not p.name.endswith((".partial", ".tmp")) or ".advparams-staging" in str(p.parent), p


def _spread(steps: int, count: int) -> list[int]:
    """``count`` steps spread over ``1..steps``, and the last four (the install)."""
    return sorted({1 + round(i * (steps - 1) / (count - 1)) for i in range(count)} | set(range(steps - 3, steps + 1)))


def _lock_case(root: Path, kill_at: int) -> str:
    base = root / f"lock-{kill_at}"
    base.mkdir()
    os.symlink(root / "template" / "src", base / "src")
    code, _ = _child(LOCK, base, kill_at)
    assert code in (0, *KILLED), code
    _no_partial_files(base)
    if (base / "L").exists():  # never a locked folder without the key that unlocks it
        key = load_key(base / "k.key")
        assert folder_fingerprint(base / "L") == key.locked_fingerprint
    recover_interrupted_pair(base / "L", base / "k.key")
    state = "new" if (base / "L").exists() else "none"
    if state == "none":
        (base / "k.key").unlink(missing_ok=True)  # a key placed before its folder, which was never published
        assert _child(LOCK, base, 0)[0] == 0  # the next run completes
    assert sorted(p.name for p in base.iterdir()) == ["L", "k.key", "src"]
    assert folder_fingerprint(base / "L") == load_key(base / "k.key").locked_fingerprint
    return state


def test_a_streamed_lock_killed_anywhere_never_leaves_a_locked_folder_without_its_key(tmp_path: Path) -> None:
    (tmp_path / "template").mkdir()
    _source(tmp_path / "template")
    probe = tmp_path / "probe"
    probe.mkdir()
    os.symlink(tmp_path / "template" / "src", probe / "src")
    code, steps = _child(LOCK, probe, 0)
    assert code == 0
    names = [s.split()[1] for s in steps]
    assert {"pwrite", "fsync", "rename", "linkat"} <= set(names), names
    with ThreadPoolExecutor(2) as pool:
        states = set(pool.map(lambda n: _lock_case(tmp_path, n), _spread(len(steps), 8)))
    assert states == {"none", "new"}


def _unlock_case(root: Path, kill_at: int, original: str) -> None:
    base = root / f"unlock-{kill_at}"
    base.mkdir()
    for name in ("L", "k.key"):
        os.symlink(root / "pair" / name, base / name)
    code, _ = _child(UNLOCK, base, kill_at)
    assert code in (0, *KILLED), code
    _no_partial_files(base)
    if (base / "U").exists():  # complete whenever it is there
        assert folder_fingerprint(base / "U") == original
    else:
        assert _child(UNLOCK, base, 0)[0] == 0
    assert folder_fingerprint(base / "U") == original
    assert sorted(p.name for p in base.iterdir()) == ["L", "U", "k.key"]


def test_a_streamed_unlock_killed_anywhere_leaves_no_half_written_folder(tmp_path: Path) -> None:
    pair = tmp_path / "pair"
    pair.mkdir()
    original = _source(pair)
    assert _child(LOCK, pair, 0)[0] == 0
    probe = tmp_path / "probe"
    probe.mkdir()
    for name in ("L", "k.key"):
        os.symlink(pair / name, probe / name)
    code, steps = _child(UNLOCK, probe, 0)
    assert code == 0 and folder_fingerprint(probe / "U") == original
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: _unlock_case(tmp_path, n, original), _spread(len(steps), 16)))
