"""``advparams demo``: train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, show the numbers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from advparams.checkpoint import load_checkpoint
from advparams.cli._common import pct, train_progress
from advparams.cli._spec import add_verbs
from advparams.data import load_dataset
from advparams.devices import resolve_device
from advparams.errors import AdvParamsError
from advparams.metrics import accuracy
from advparams.training import TrainConfig
from advparams.usecases import lock_checkpoint, train_checkpoint, unlock_checkpoint


def _checkpoint(args: argparse.Namespace, path: Path, device: Any) -> Any:
    """The demo's LeNet-5: the cached one in the work folder, else one trained now."""
    if (path / "model.json").exists():
        try:
            ckpt = load_checkpoint(path, device=device)
            print(f"reusing the cached checkpoint {path}")
            return ckpt
        except AdvParamsError as exc:
            print(f"cached checkpoint unusable ({exc}); training again")
    train = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, optimizer="adam")
    bar, on_step = train_progress("lenet", quiet=False)
    try:
        done = train_checkpoint("lenet", "fashion-mnist", path, train=train, seed=0, data_dir=args.data_dir,
                                device=args.device, force=True, progress=on_step)  # fmt: skip
    finally:
        bar.close()
    print(f"trained lenet on fashion-mnist: test accuracy {pct(done.test_accuracy)}\ncheckpoint written to {path}")
    return load_checkpoint(path, device=device)


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, and show the numbers."""
    start = time.perf_counter()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    paths = [work / "lenet-fashion-mnist", work / "locked", work / "key.safetensors", work / "restored"]
    ckpt_path, locked_path, key_path, restored_path = paths
    test_data = load_dataset("fashion-mnist", "test", args.data_dir)
    ckpt = _checkpoint(args, ckpt_path, device)
    # The demo owns its work folder, so it replaces its own earlier outputs there.
    lock = lock_checkpoint(ckpt_path, locked_path, key_path, dataset="fashion-mnist", data_dir=args.data_dir,
                           device=args.device, evaluate=False, allow_partial=True, force=True)  # fmt: skip
    restored = unlock_checkpoint(locked_path, key_path, restored_path, device=args.device, force=True).model
    assert restored is not None  # LeNet-5 is always loaded
    locked = load_checkpoint(locked_path, device=device)
    orig_state, rest_state = ckpt.model.state_dict(), restored.state_dict()
    exact = list(orig_state) == list(rest_state) and all(torch.equal(orig_state[k], rest_state[k]) for k in orig_state)
    acc = {name: accuracy(m, test_data) for name, m in (("original", ckpt.model), ("locked", locked.model),
                                                        ("unlocked", restored))}  # fmt: skip
    rep = lock.report
    print()
    print("AdvParams demo: LeNet-5 on Fashion-MNIST (test set, 10,000 images)")
    print(f"  accuracy original  {pct(acc['original'])}")
    print(f"  accuracy locked    {pct(acc['locked'])}   (chance: 10.00%)")
    print(f"  accuracy unlocked  {pct(acc['unlocked'])}")
    print(f"  parameters changed {rep.params_changed} of {rep.params_total} ({rep.proportion_percent:.4f}%), "
          f"lock took {rep.seconds:.2f} s")  # fmt: skip
    print(f"  unlocked == original, every tensor bit-exact: {'yes' if exact else 'NO'}")
    print(f"  files in {work}: lenet-fashion-mnist/, locked/, key.safetensors, restored/ "
          f"({time.perf_counter() - start:.0f} s in all)")  # fmt: skip
    return 0 if exact else 1


def add_parsers(sub: Any) -> None:
    """Adds these commands (declared in ``demo.yaml`` beside this module) to the CLI's sub-parsers."""
    add_verbs(sub, globals())
