"""``lock`` and ``unlock`` killed with SIGKILL at every step of their output stage and at
moments spread over the whole run: no key is ever lost.

The command runs in a child process (forked from a server that imported the toolkit once:
:mod:`tests.forked`) whose file-system calls (rename, link, unlink,
write, fsync, mkdir, the exchange and unnamed-file link of :mod:`advparams.files.writing`,
the weights write) are counted; with ``KILL_AT=n`` the child kills itself with SIGKILL
just before call ``n``, which is exactly what a kill from outside at that instant does.
More kills come from the parent at fixed delays. After each kill:

* whenever a locked model is at ``--out``, the key at ``--key`` unlocks it bit-exactly,
  and every file at an output path is complete (old or new);
* no temporary or partial key file is left anywhere (only the previous pair's hidden
  backups, which are the previous files themselves);
* after the recovery that the next ``lock`` runs first, the paths hold exactly the old
  pair or exactly the new one, and nothing hidden is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.data.synthetic import SIZE
from advparams.errors import AdvParamsError
from advparams.files import recover_interrupted_pair
from advparams.fingerprint import model_fingerprint
from advparams.keys import load_key, unlock
from advparams.models import build_model
from tests import forked

ARGS = {"num_classes": 10, "in_channels": 1, "input_size": SIZE}


def _child(argv: list[str], cwd: Path, kill_at: int, delay: float | None = None) -> tuple[int, list[str]]:
    log = cwd / f"steps-{kill_at}-{delay}.log"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = forked.run("command_killed_at", (argv, kill_at, str(log)), workdir=cwd, env=env, kill_after=delay)
    if done.returncode not in (0, -signal.SIGKILL):
        print(done.stderr)
    steps = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return done.returncode, steps


def _fingerprint_or_none(path: Path) -> str | None:
    if not path.exists():
        return None
    return model_fingerprint(load_checkpoint(path).model)  # raises if incomplete


def _setup(base: Path) -> dict[str, object]:
    """A source model and a previous lock pair, made by `lock` itself."""
    base.mkdir()
    model = build_model("lenet", ARGS, seed=0)
    save_checkpoint(model, base / "m", architecture="lenet", arguments=ARGS, dataset="synthetic")
    lock = ["lock", "m", "--scheme", "hardened", "--out", "L", "--key", "k.key", "--no-eval", "--allow-partial"]
    code, _ = _child(lock, base, 0)  # an untrained model: nothing to lock, accepted for the test
    assert code == 0
    return {"key": (base / "k.key").read_bytes(), "locked": _fingerprint_or_none(base / "L")}


def _check_lock_state(base: Path, old: dict[str, object]) -> str:
    out, key = base / "L", base / "k.key"
    # Whenever a locked model is on disk at --out, the key at --key unlocks it bit-exactly.
    locked = _fingerprint_or_none(out)
    if locked is not None:
        k = load_key(key)
        assert model_fingerprint(unlock(load_checkpoint(out).model, k)) == k.original_fingerprint
    if key.exists():
        load_key(key)  # complete
    # No temporary or partial key file anywhere; hidden entries are only backups or staged folders.
    for p in base.rglob("*"):
        assert not p.name.endswith((".tmp", ".advparams-new")), p
        if p.parent == base and p.name.startswith("."):
            assert p.name.endswith((".advparams-backup", ".advparams-staging")) or ".advparams-staging" in p.name, p
    # While nothing is at --out, the previous pair is whole in its backups (once the new
    # model is in place, the backups are being removed and may be partial).
    bak_l, bak_k = base / ".L.advparams-backup", base / ".k.key.advparams-backup"
    if bak_k.exists():
        assert bak_k.read_bytes() == old["key"]  # the previous key itself
    if locked is None and bak_l.exists():
        assert _fingerprint_or_none(bak_l) == old["locked"]
    # The recovery the next lock runs leaves the old pair or the new one, and nothing else.
    recover_interrupted_pair(out, key)
    assert sorted(p.name for p in base.iterdir()) == ["L", "k.key", "m"]
    now = _fingerprint_or_none(out)
    if key.read_bytes() == old["key"]:
        assert now == old["locked"]
        return "old"
    k = load_key(key)
    assert now == k.locked_fingerprint != old["locked"]
    assert model_fingerprint(unlock(load_checkpoint(out).model, k)) == k.original_fingerprint
    return "new"


LOCK = ["lock", "m", "--scheme", "hardened", "--out", "L", "--key", "k.key", "--no-eval", "--force", "--allow-partial"]
UNLOCK = ["unlock", "L", "--key", "k.key", "--out", "U", "--no-eval", "--force"]


def _copy(template: Path, base: Path) -> dict[str, object]:
    shutil.copytree(template, base)
    return {"key": (base / "k.key").read_bytes(), "locked": _fingerprint_or_none(base / "L")}


def _lock_case(root: Path, kill_at: int, delay: float | None) -> tuple[int, str]:
    base = root / f"lock-{kill_at}-{delay}"
    old = _copy(root / "template", base)
    code, _ = _child(LOCK, base, kill_at, delay)
    assert code in (0, -signal.SIGKILL), code
    return code, _check_lock_state(base, old)


def test_lock_killed_at_every_output_step_and_over_time(tmp_path) -> None:
    _setup(tmp_path / "template")
    probe = tmp_path / "probe"
    _copy(tmp_path / "template", probe)
    start = time.perf_counter()
    code, steps = _child(LOCK, probe, 0)
    seconds = time.perf_counter() - start
    assert code == 0
    names = [s.split()[1] for s in steps]
    # the key write, the --force replacement (backups, renames) and the weights write are all among them
    assert {"linkat", "link", "rename", "unlink", "save_weights", "rmtree"} <= set(names), names
    cases = [(n, None) for n in range(1, len(steps) + 1)]
    cases += [(0, seconds * f) for f in (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)]
    assert len(cases) >= 20
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: _lock_case(tmp_path, *c), cases))
    killed = sum(code == -signal.SIGKILL for code, _ in results)
    states = {state for _, state in results}
    assert killed >= len(steps) and states == {"old", "new"}, results


def _unlock_case(root: Path, kill_at: int, delay: float | None) -> str:
    base = root / f"unlock-{kill_at}-{delay}"
    _copy(root / "template", base)
    old_u = (base / "U" / "model.json").read_bytes()
    code, _ = _child(UNLOCK, base, kill_at, delay)
    assert code in (0, -signal.SIGKILL), code
    # the locked input and its key are never touched
    k = load_key(base / "k.key")
    assert model_fingerprint(unlock(load_checkpoint(base / "L").model, k)) == k.original_fingerprint
    # U is always a complete model: the old one or the new one (the path is never empty)
    assert model_fingerprint(load_checkpoint(base / "U").model) == k.original_fingerprint
    state = "old" if (base / "U" / "model.json").read_bytes() == old_u else "new"
    # a later unlock cleans what the killed one had staged
    assert _child(UNLOCK, base, 0)[0] == 0
    assert sorted(p.name for p in base.iterdir()) == ["L", "U", "k.key", "m"]
    return state


def test_unlock_killed_at_every_output_step(tmp_path) -> None:
    template = tmp_path / "template"
    _setup(template)
    assert _child(["unlock", "L", "--key", "k.key", "--out", "U", "--no-eval"], template, 0)[0] == 0
    probe = tmp_path / "probe"
    _copy(template, probe)
    code, steps = _child(UNLOCK, probe, 0)
    assert code == 0 and "exchange" in [s.split()[1] for s in steps]
    cases = [(n, None) for n in range(1, len(steps) + 1)]
    with ThreadPoolExecutor(2) as pool:
        states = set(pool.map(lambda c: _unlock_case(tmp_path, *c), cases))
    assert states == {"old", "new"}


def test_recovery_rolls_back_a_replacement_killed_in_its_window(tmp_path) -> None:
    """The state a kill between moving the old model aside and placing the new key leaves."""
    base = tmp_path / "w"
    old = _setup(base)
    os.link(base / "k.key", base / ".k.key.advparams-backup")
    os.rename(base / "L", base / ".L.advparams-backup")
    os.unlink(base / "k.key")
    assert recover_interrupted_pair(base / "L", base / "k.key").startswith("rolled back")
    assert (base / "k.key").read_bytes() == old["key"] and _fingerprint_or_none(base / "L") == old["locked"]


def test_a_leftover_backup_without_recovery_is_reported(tmp_path) -> None:
    from advparams.files import check_output

    (tmp_path / ".x.advparams-backup").write_text("old")
    with pytest.raises(AdvParamsError, match="interrupted"):
        check_output(tmp_path / "x", force=True)
    shutil.rmtree(tmp_path)
