"""Per-user keys and tracing on a language model trained here (docs/language-models.md).

The owner locks a GPT-2 trained on ``python-stdlib`` with the hardened lock (every moved
value's mantissa dithered, as per-user keys need), issues a key to each of ``--users``
users, and traces leaked copies three ways, at the marks' calibrated false-accusation
rate (``MarkConfig.false_accusation``):

* **white-box**: from the suspect's weights;
* **log-probabilities**: from the difference of the log-probabilities of the centre
  model's two most likely next tokens after each secret prompt, with the first
  ``n`` prompts for each ``n`` of ``--counts`` (the fewest that name the holder is the
  number of prompts this access needs);
* **text only**: from the token the suspect writes after each prompt (greedy decoding).

Every user's own copy is traced, then ``--coalitions`` coalitions of each size in
``--colluders`` (the average of their copies' weights, disjoint users), then the clean
model (nobody's copy). A trace is *right* when it accuses someone and only guilty users,
*false* when it accuses anyone innocent.

    .venv/bin/python benchmarks/language_model_tracing.py runs/lm/gpt2-seed0 \\
        --out docs/benchmarks/language_model_tracing.jsonl
    .venv/bin/python benchmarks/language_model_tracing.py --table docs/benchmarks/language_model_tracing.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_jsonl, environment, log, read_jsonl  # noqa: E402

from advparams import SCHEMES, unlock  # noqa: E402
from advparams.checkpoint import load_checkpoint  # noqa: E402
from advparams.data import load_dataset  # noqa: E402
from advparams.tracing.keys import issue_user_key, user_plan  # noqa: E402
from advparams.tracing.mark import MarkConfig, trace_weights  # noqa: E402
from advparams.tracing.prompts import PromptTracer, make_prompts, prompt_answers  # noqa: E402
from advparams.tracing.queries import QueryConfig  # noqa: E402


def test_stream() -> torch.Tensor:
    """The test documents as one byte stream (the windows of the data set, joined)."""
    return load_dataset("python-stdlib", "test").ids.reshape(-1)


def average(models: list[torch.nn.Module]) -> torch.nn.Module:
    """The colluders' copies averaged weight by weight (the tracing study's coalition)."""
    out = models[0]
    states = [m.state_dict() for m in models]
    with torch.no_grad():
        for name, t in out.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.stack([s[name] for s in states]).mean(0))
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    ckpt = load_checkpoint(args.checkpoint)
    original = ckpt.model.eval()
    seed = int(ckpt.meta.get("record", {}).get("seed", 0))
    train, test = load_dataset("python-stdlib", "train"), load_dataset("python-stdlib", "test")
    options = {"reproducible": True, "dither": 23, "seed": seed, "num_samples": 400, "check_samples": 1000}
    owner = SCHEMES.build("hardened", {**options, "batch_size": 100}).lock(original, train)
    mark = MarkConfig()
    plan = user_plan(owner.key, original, mark)
    config = QueryConfig(queries=max(args.counts), batch_size=64)
    start = time.perf_counter()
    pool = test.ids if not args.stride else test_stream().unfold(0, args.length, args.stride)
    prompts = make_prompts(original, plan, pool, config, length=args.length, shortlist=2)
    tracer = PromptTracer(original, plan, prompts, [f"user{i:03d}" for i in range(args.users)], config)
    setup = time.perf_counter() - start
    users = list(tracer.tracer.users)
    rate = mark.false_accusation
    cases: list[tuple[str, tuple[str, ...]]] = [("user", (u,)) for u in users]
    free = iter(users)
    for size in args.colluders:
        cases += [(f"coalition-{size}", tuple(next(free) for _ in range(size))) for _ in range(args.coalitions)]
    cases.append(("clean", ()))
    rows = []
    for kind, truth in cases:
        copies = [unlock(owner.model, issue_user_key(owner.model, owner.key, u, mark)) for u in truth]
        suspect = average(copies) if copies else original
        tokens, margins = prompt_answers(suspect, prompts, tracer.classes)
        traces = [("white-box", 0, trace_weights(suspect, original, plan, users, rate).accused)]
        traces += [("logprobs", n, tracer.trace_logprobs(margins, rate, n).accused) for n in args.counts]
        traces += [("text", n, tracer.trace_text(tokens, rate, n).accused) for n in args.counts]
        for method, n, accused in traces:
            rows.append({
                "bench": "language_model_tracing", "model": args.checkpoint.name, "seed": seed, "case": kind,
                "colluders": len(truth), "method": method, "prompts": n, "prompt_tokens": args.length,
                "users": args.users, "rate": rate, "stride": args.stride, "accused": len(accused),
                "guilty_named": len(set(accused) & set(truth)), "innocent_named": len(set(accused) - set(truth)),
                "text_reading": "centred", "setup_seconds": setup, "env": environment(torch.device("cpu")),
            })  # fmt: skip
        log(f"{kind} {truth}: " + ", ".join(f"{m}@{n}:{len(a)}" for m, n, a in traces))
        append_jsonl(args.out, rows[-len(traces) :])  # as it goes: a long run keeps what it measured
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Per method and prompt count: copies named, coalitions named, innocents accused."""
    out = [
        "| model | candidate prompts | access | prompts | users named (own copy) | coalitions of 2 named "
        "| coalitions of 3 named | traces | innocent accused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def run_of(r: dict[str, Any]) -> tuple[str, int, int]:
        return r["model"], r.get("stride", 0), r["prompt_tokens"]

    keys = sorted(
        {(*run_of(r), r["method"], r["prompts"]) for r in rows},
        key=lambda k: (k[0], k[1], k[2], k[3] != "white-box", k[3], k[4]),
    )
    for model, stride, length, method, n in keys:
        mine = [r for r in rows if (*run_of(r), r["method"], r["prompts"]) == (model, stride, length, method, n)]

        def named(kind: str, rs: list[dict[str, Any]] = mine) -> str:
            sel = [r for r in rs if r["case"] == kind]
            good = sum(r["guilty_named"] > 0 and r["innocent_named"] == 0 for r in sel)
            return f"{good}/{len(sel)}" if sel else "-"

        false = sum(r["innocent_named"] > 0 for r in mine)
        pool = f"{length} bytes every {stride} bytes" if stride else f"first {length} bytes of each window"
        label = "weights" if method == "white-box" else method
        if method == "text":
            label += ", centred" if mine[0].get("text_reading") == "centred" else ", signs as read"
        out.append(
            f"| {model} | {pool} | {label} | {n or '-'} | {named('user')} | {named('coalition-2')} "
            f"| {named('coalition-3')} | {len(mine)} | {false} |"
        )
    total = len(rows)
    wrong = sum(r["innocent_named"] > 0 for r in rows)
    out += ["", f"All methods and counts: {total} traces, {wrong} with an innocent user accused."]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", type=Path, help="a trained gpt2 checkpoint (advparams train)")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--colluders", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--coalitions", type=int, default=10, help="coalitions of each size")
    ap.add_argument("--counts", type=int, nargs="+", default=[64, 128, 256, 512, 1024], help="prompt counts")
    ap.add_argument("--length", type=int, default=64, help="tokens per prompt")
    ap.add_argument(
        "--stride",
        type=int,
        default=0,
        help="candidate prompts start every STRIDE bytes of the test documents (0: the data set's windows)",
    )
    ap.add_argument("--out", help="append the rows to this JSON-lines file")
    ap.add_argument("--table", type=Path, help="print the table of these rows and stop")
    args = ap.parse_args()
    if args.table:
        print(table(read_jsonl(args.table)))
        return
    if args.checkpoint is None:
        ap.error("give a checkpoint, or --table")
    run(args)


if __name__ == "__main__":
    main()
