"""``advparams demo``: train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, show the numbers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.cli._common import (
    pct,
)
from advparams.cli.models import cmd_train
from advparams.data import load_dataset
from advparams.devices import resolve_device
from advparams.errors import AdvParamsError
from advparams.keys import load_key, unlock
from advparams.locked import save_locked
from advparams.metrics import accuracy
from advparams.schemes import SCHEMES


def cmd_demo(args: argparse.Namespace) -> int:
    """Train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, and show the numbers."""
    start = time.perf_counter()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    ckpt_path, locked_path, key_path, restored_path = (
        work / "lenet-fashion-mnist",
        work / "locked",
        work / "key.safetensors",
        work / "restored",
    )
    test_data = load_dataset("fashion-mnist", "test", args.data_dir)
    train_data = load_dataset("fashion-mnist", "train", args.data_dir)
    ckpt = None
    if (ckpt_path / "model.json").exists():
        try:
            ckpt = load_checkpoint(ckpt_path, device=device)
            print(f"reusing the cached checkpoint {ckpt_path}")
        except AdvParamsError as exc:
            print(f"cached checkpoint unusable ({exc}); training again")
    if ckpt is None:
        ns = argparse.Namespace(
            model="lenet",
            dataset="fashion-mnist",
            data_dir=args.data_dir,
            epochs=args.epochs,
            batch_size=128,
            lr=1e-3,
            optimizer="adam",
            seed=0,
            device=args.device,
            out=str(ckpt_path),
            force=True,
            json=False,
            set=[],
            train_samples=None,
        )
        cmd_train(ns)
        ckpt = load_checkpoint(ckpt_path, device=device)
    scheme = SCHEMES.build("advparams", {})
    result = scheme.lock(ckpt.model, train_data)
    # The demo owns its work folder, so it replaces its own earlier outputs there.
    save_locked(
        result.model,
        result.key,
        locked_path,
        key_path,
        architecture=ckpt.architecture,
        arguments=ckpt.arguments,
        dataset="fashion-mnist",
        force=True,
    )
    locked = load_checkpoint(locked_path, device=device)
    restored = unlock(locked.model, load_key(key_path))
    save_checkpoint(
        restored,
        restored_path,
        architecture=ckpt.architecture,
        arguments=ckpt.arguments,
        dataset="fashion-mnist",
        force=True,
        made_by="unlock",
    )
    orig_state, rest_state = ckpt.model.state_dict(), restored.state_dict()
    exact = list(orig_state) == list(rest_state) and all(torch.equal(orig_state[k], rest_state[k]) for k in orig_state)
    acc = {
        name: accuracy(m, test_data)
        for name, m in (("original", ckpt.model), ("locked", locked.model), ("unlocked", restored))
    }
    rep = result.report
    print()
    print("AdvParams demo: LeNet-5 on Fashion-MNIST (test set, 10,000 images)")
    print(f"  accuracy original  {pct(acc['original'])}")
    print(f"  accuracy locked    {pct(acc['locked'])}   (chance: 10.00%)")
    print(f"  accuracy unlocked  {pct(acc['unlocked'])}")
    print(
        f"  parameters changed {rep.params_changed} of {rep.params_total} ({rep.proportion_percent:.4f}%), "
        f"lock took {rep.seconds:.2f} s"
    )
    print(f"  unlocked == original, every tensor bit-exact: {'yes' if exact else 'NO'}")
    print(
        f"  files in {work}: lenet-fashion-mnist/, locked/, key.safetensors, restored/ "
        f"({time.perf_counter() - start:.0f} s in all)"
    )
    return 0 if exact else 1


def add_parsers(sub: Any) -> None:
    """Registers these commands on the top-level parser's subparsers."""
    p = sub.add_parser("demo", help="train (or reuse) LeNet-5 on Fashion-MNIST, lock, unlock, show the numbers")
    p.add_argument("--workdir", default="runs/demo", help="folder for the demo's files (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs when no cached checkpoint (default: 10)")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: CUDA when present)")
    p.add_argument("--data-dir", help="folder holding Fashion-MNIST (default: found automatically)")
    p.set_defaults(func=cmd_demo)
