"""Benchmark (a preview of the tracing study, docs/tracing.md): users' copies of a hardened
lock's LeNet-5 on Fashion-MNIST, their clean accuracy and label agreement against the
original, and white-box tracing of a copy before and after simple attacks and of 2- and
3-colluder averages, for a few mark strengths. 100 users in the roster; the traced copies
are those of the first users. Trained models come from ``lock_speed.py``'s cache.

    python benchmarks/tracing_preview.py --seeds 0 1 2 --out docs/benchmarks/tracing_preview.jsonl

Prints a Markdown table; appends one JSON line per seed, strength and case to --out.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, fashion_mnist, log  # noqa: E402
from lock_speed import checkpoint_path, prepare  # noqa: E402

from advparams import accuracy, unlock  # noqa: E402
from advparams.attacks import ATTACKS  # noqa: E402
from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.devices import resolve_device  # noqa: E402
from advparams.schemes.hardened import Hardened  # noqa: E402
from advparams.tracing import MarkConfig, issue_user_key, trace_weights, user_plan  # noqa: E402

USERS = [f"user{i:03d}" for i in range(100)]


def average(models: list[torch.nn.Module]) -> torch.nn.Module:
    out = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    out.load_state_dict(
        {k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
    )
    return out


def noisy(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() >= 2:
                p.add_(torch.randn(p.shape, generator=g) * scale * float(p.std()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    parser.add_argument("--cache", default="runs/bench")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = resolve_device("cpu")
    train, test = fashion_mnist("train", 28, 1), fashion_mnist("test", 28, 1)
    x = test.tensors()[0]
    rows = []
    for seed in args.seeds:
        prepare("lenet", seed, Path(args.cache), device)
        model = load_checkpoint(checkpoint_path("lenet", seed, Path(args.cache))).model
        locked = Hardened(draws=1, seed=seed).lock(model, train)
        with torch.no_grad():
            ref = model(x).argmax(1)
        clean = accuracy(model, test)
        for strength in args.strengths:
            cfg = MarkConfig(strength=strength)
            plan = user_plan(locked.key, model, cfg)
            start = time.perf_counter()
            copies = {u: unlock(locked.model, issue_user_key(locked.model, locked.key, u, cfg)) for u in USERS[:3]}
            issue_s = (time.perf_counter() - start) / 3
            cases: dict[str, tuple[torch.nn.Module, tuple[str, ...]]] = {"copy": (copies[USERS[0]], (USERS[0],))}
            ft = ATTACKS.build("finetune", {"data_fraction": 0.01, "scratch": False, "seed": seed})
            cases["finetune 1%"] = (ft.run(copies[USERS[0]], train).model, (USERS[0],))
            for rate in (0.3, 0.5):
                pr = ATTACKS.build("prune", {"rate": rate})
                cases[f"prune {rate:.0%}"] = (pr.run(copies[USERS[0]], None).model, (USERS[0],))
            cases["noise 0.05 std"] = (noisy(copies[USERS[0]], 0.05, seed), (USERS[0],))
            cases["2 colluders"] = (average([copies[u] for u in USERS[:2]]), tuple(USERS[:2]))
            cases["3 colluders"] = (average([copies[u] for u in USERS[:3]]), tuple(USERS[:3]))
            for case, (suspect, guilty) in cases.items():
                result = trace_weights(suspect, model, plan, USERS, cfg.false_accusation)
                with torch.no_grad():
                    agree = float((suspect(x).argmax(1) == ref).double().mean())
                row = {
                    "benchmark": "tracing_preview",
                    "seed": seed,
                    "strength": strength,
                    "positions": cfg.positions,
                    "case": case,
                    "accuracy_original": clean,
                    "accuracy": accuracy(suspect, test),
                    "agreement": agree,
                    "named_right": bool(result.accused) and set(result.accused) <= set(guilty),
                    "innocent_accused": sorted(set(result.accused) - set(guilty)),
                    "accused": len(result.accused),
                    "top_score": max(result.scores),
                    "threshold": result.threshold,
                    "issue_seconds": issue_s,
                    "env": environment(device),
                }
                rows.append(row)
                append_jsonl(args.out, [row])
                log(f"seed {seed} strength {strength} {case}: acc {100 * row['accuracy']:.2f} "
                    f"(orig {100 * clean:.2f}), agree {100 * agree:.2f}%, accused {result.accused}")  # fmt: skip
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print("| seed | strength | case | accuracy % (original) | label agreement % | named right | innocents accused |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['strength']} | {r['case']} | "
            f"{100 * r['accuracy']:.2f} ({100 * r['accuracy_original']:.2f}) "
            f"| {100 * r['agreement']:.2f} | {'yes' if r['named_right'] else 'no'} | {len(r['innocent_accused'])} |"
        )


if __name__ == "__main__":
    main()
