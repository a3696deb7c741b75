"""Locks on a language model trained here (docs/language-models.md): AdvParams (batched and
greedy searches) and the hardened lock on GPT-2 models trained on ``python-stdlib``, each
lock made and undone through a Hugging Face folder with the library's own use cases
(what ``advparams lock`` / ``unlock`` run), the unlocked folder compared with the
original through ``from_pretrained``.

Per model and lock it records the values changed, the lock's forward and backward passes
over its lock samples, the test perplexity of the clean and the locked model against the
unigram bar (a byte-frequency model of the training documents, on the test documents),
whether the unlock is bit-exact, and what the clean, locked and unlocked models write
after a prompt (sampled with the same seed).

    advparams train --model gpt2 --dataset python-stdlib --epochs 1 --batch-size 32 \\
        --seed 0 --out runs/lm/gpt2-seed0          # and seeds 1, 2 (about 30 min each)
    .venv/bin/python benchmarks/language_model_locks.py runs/lm/gpt2-seed0 runs/lm/gpt2-seed1 \\
        runs/lm/gpt2-seed2 --work runs/lm/locks --out docs/benchmarks/language_model_locks.jsonl
    .venv/bin/python benchmarks/language_model_locks.py --table docs/benchmarks/language_model_locks.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, log, read_jsonl  # noqa: E402

from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.generation import continue_bytes, printable  # noqa: E402
from advparams.testing import state_equal  # noqa: E402
from advparams.usecases.locks import lock_checkpoint, unlock_checkpoint  # noqa: E402

DATASET = "python-stdlib"
SAMPLES = {"num_samples": 400, "check_samples": 1000, "batch_size": 100}
"""Lock and check samples (windows of 128 bytes) of every lock here [inferred: a window
holds 127 targets, so fewer windows than images]."""
LOCKS: dict[str, tuple[str, dict[str, Any]]] = {
    "advparams": ("advparams", {}),
    "hardened": ("hardened", {"reproducible": True}),
    "advparams-greedy": ("advparams", {"search": "greedy"}),
}
PROMPT = "import os\nimport sys\n\n\ndef "
TOKENS = 120
TEMPERATURE = 0.5


def write(model: torch.nn.Module) -> str:
    """What ``model`` writes after the prompt: sampled at ``TEMPERATURE``, the same draws
    for every model (greedy decoding of a small model repeats itself)."""
    return continue_bytes(
        model, PROMPT, tokens=TOKENS, window=128, temperature=TEMPERATURE, generator=torch.Generator().manual_seed(0)
    )


def hf_folder(checkpoint: Path, work: Path) -> Path:
    """The checkpoint's model written by ``save_pretrained`` (once)."""
    folder = work / f"{checkpoint.name}-hf"
    if not (folder / "config.json").is_file():
        load_checkpoint(checkpoint).model.save_pretrained(folder)
    return folder


def measure(checkpoint: Path, work: Path, label: str) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    scheme, options = LOCKS[label]
    ckpt = load_checkpoint(checkpoint)
    seed = int(ckpt.meta.get("record", {}).get("seed", ckpt.meta.get("seed", 0)))
    source = hf_folder(checkpoint, work)
    out, key, back = work / f"{checkpoint.name}-{label}", work / f"{checkpoint.name}-{label}.key", work / "back"
    opts = {**SAMPLES, **options, "seed": seed}
    done = lock_checkpoint(source, out, key, scheme=scheme, options=opts, dataset=DATASET, device="cpu", force=True)
    unlock_checkpoint(out, key, back, device="cpu", force=True)
    load = lambda p: AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True)  # noqa: E731
    original, locked, unlocked = load(source), load(out), load(back)
    assert done.perplexity is not None
    clean, locked_ppl, bar = done.perplexity
    rep = done.report
    return {
        "bench": "language_model_locks",
        "model": checkpoint.name,
        "seed": seed,
        "lock": label,
        "scheme": scheme,
        "options": opts,
        "params_total": rep.params_total,
        "params_changed": rep.params_changed,
        "forward_passes": rep.forward_passes,
        "backward_passes": rep.backward_passes,
        "lock_seconds": rep.seconds,
        "stopped": rep.stopped,
        "target_met": rep.target_met,
        "certified": rep.certified,
        "check_perplexity": 1 / rep.check_accuracy if rep.check_accuracy else None,
        "perplexity_clean": clean,
        "perplexity_locked": locked_ppl,
        "perplexity_bar": bar,
        "accuracy_clean": done.accuracy_before,
        "accuracy_locked": done.accuracy_locked,
        "exact_unlock": state_equal(unlocked, original) and not state_equal(locked, original),
        "prompt": PROMPT,
        "temperature": TEMPERATURE,
        "text_clean": write(original),
        "text_locked": write(locked),
        "text_unlocked": write(unlocked),
        "env": environment(torch.device("cpu")),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The lock table of docs/language-models.md (one line per lock, over the seeds)."""
    out = [
        "| lock | models | clean test perplexity | locked test perplexity (lowest) | unigram bar | at or above the bar "
        "| test ÷ check perplexity | bit-exact unlock | values per model | fwd+bwd passes per model |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in LOCKS:
        mine = sorted((r for r in rows if r["lock"] == label), key=lambda r: r["seed"])
        if not mine:
            continue
        clean = [r["perplexity_clean"] for r in mine]
        locked = [r["perplexity_locked"] for r in mine]
        spread = f" ± {statistics.stdev(clean):.2f}" if len(clean) > 1 else ""
        above = sum(r["perplexity_locked"] >= r["perplexity_bar"] for r in mine)
        values = " / ".join(f"{r['params_changed']:,}" for r in mine)
        ratios = [r["perplexity_locked"] / r["check_perplexity"] for r in mine if r.get("check_perplexity")]
        ratio = f"{min(ratios):.2f} to {max(ratios):.2f}" if ratios else "-"
        passes = " / ".join(f"{r['forward_passes']:.1f}+{r['backward_passes']:.1f}" for r in mine)
        out.append(
            f"| {label} | {len(mine)} | {statistics.mean(clean):.2f}{spread} | {statistics.mean(locked):.2f} "
            f"({min(locked):.2f}) | {mine[0]['perplexity_bar']:.2f} | {above}/{len(mine)} | {ratio} "
            f"| {sum(r['exact_unlock'] for r in mine)}/{len(mine)} | {values} | {passes} |"
        )
    return "\n".join(out)


def samples(rows: list[dict[str, Any]]) -> str:
    """What the first model writes after the prompt, clean and under each lock."""
    first = min(r["seed"] for r in rows)
    mine = [r for r in rows if r["seed"] == first]
    lines = [
        "Control bytes are shown as `\\xNN`; bytes that are not UTF-8 as `\ufffd`.",
        "",
        f"Model seed {first}, prompt `{json.dumps(mine[0]['prompt'])}`, {TOKENS} bytes sampled at temperature "
        f"{mine[0]['temperature']} (the same draws for every model):",
        "",
    ]
    lines += ["clean:", "", "```", printable(mine[0]["prompt"] + mine[0]["text_clean"]), "```", ""]
    for r in mine:
        lines += [f"{r['lock']}, locked:", "", "```", printable(r["prompt"] + r["text_locked"]), "```", ""]
        same = "the same as the clean model's" if r["text_unlocked"] == r["text_clean"] else "DIFFERENT"
        lines += [f"{r['lock']}, unlocked: {same}.", ""]
    return "\n".join(lines).rstrip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="*", type=Path, help="trained gpt2 checkpoints (advparams train)")
    ap.add_argument("--work", type=Path, default=Path("runs/lm/locks"), help="folder for the locked folders and keys")
    ap.add_argument("--locks", nargs="+", default=list(LOCKS), choices=list(LOCKS))
    ap.add_argument("--out", help="append the rows to this JSON-lines file")
    ap.add_argument("--table", type=Path, help="print the tables of these rows and stop")
    args = ap.parse_args()
    if args.table:
        rows = read_jsonl(args.table)
        print(table(rows) + "\n\n" + samples(rows))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    for checkpoint in args.checkpoints:
        for label in args.locks:
            row = measure(checkpoint, args.work, label)
            log(
                f"{checkpoint.name} {label}: {row['params_changed']} values, perplexity "
                f"{row['perplexity_clean']:.2f} -> {row['perplexity_locked']:.2f} (bar {row['perplexity_bar']:.2f}), "
                f"exact {row['exact_unlock']}"
            )
            append_jsonl(args.out, [row])


if __name__ == "__main__":
    main()
