"""Checkpoints of billions of parameters (docs/scale.md): how long the streamed operations
take, and how much memory, against a plain copy of the same files (the floor) and against
AES-256-GCM encryption and decryption of them (what an owner would otherwise reach for).

For each size and dtype, a Llama-style checkpoint with random weights is built from a
config (timing needs no training) as ``save_pretrained`` writes it (one
``model.safetensors`` up to its default shard size of 50 GB, shards and an index beyond
it, with ``--shard-size`` to force shards). Then, on the same files, each operation runs in
a fresh process after one read of its input (the page cache warm, as after a download),
and its seconds and peak resident memory are measured:

* ``copy``: read every tensor and write it back to a new file, flushed (the floor);
* ``aes-encrypt`` / ``aes-decrypt``: the weight files with AES-256-GCM (``cryptography``)
  in 64 MiB chunks, each sealed with its own nonce, flushed;
* ``fingerprint``: the tensors fingerprint of the folder;
* ``lock-write``: the hardened lock's writing of the locked folder and its key from a drawn
  secret (every tensor shuffled, mantissas dithered: the settings per-user keys need); the
  check of the draws, which evaluates the model, is measured apart;
* ``unlock``: the owner key's unlock of the locked folder into a new folder;
* ``keys-issue``: a scalable user key (``advparams.tracing.rowkeys``, 4,096 marked runs),
  which reads the locked folder once for the user's copy's fingerprint; ``user-unlock``:
  that key's unlock of the locked folder into the user's copy;
* ``unlock-uniform`` (not run by default): the same with every tensor shuffled in the
  uniform layout, the one before the blocked layout existed.

    .venv/bin/python benchmarks/scale.py --sizes 125m 1b --dtypes float32 bfloat16 \\
        --work runs/scale --out docs/benchmarks/scale.jsonl
    .venv/bin/python benchmarks/scale.py --table docs/benchmarks/scale.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _common import append_jsonl, environment, log, read_jsonl

SIZES: dict[str, dict[str, int]] = {
    "125m": {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 12,
             "num_key_value_heads": 12},
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 32},
}  # fmt: skip
"""Llama-style shapes: about 134 million, 1.1 billion and 6.7 billion parameters (vocabulary 32,000, untied)."""
OPS = ("copy", "aes-encrypt", "aes-decrypt", "fingerprint", "lock-write", "unlock", "keys-issue", "user-unlock",
       "unlock-uniform")  # fmt: skip
DEFAULT_OPS = OPS[:-1]
CHUNK = 64 << 20
MANTISSA = {"float32": 23, "bfloat16": 7, "float16": 10}


def config(size: str, dtype: str) -> dict[str, Any]:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,
            "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
            "torch_dtype": dtype, **SIZES[size]}  # fmt: skip


def shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The weights' names and shapes, from the class on the meta device (nothing allocated)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k != "architectures"}))
    return {n: tuple(t.shape) for n, t in model.state_dict().items()}


def build(folder: Path, size: str, dtype: str, shard_size: int) -> None:
    """Writes the random checkpoint, tensor by tensor, in ``save_pretrained``'s layout."""
    if (folder / "config.json").exists():
        return
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg = config(size, dtype)
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    groups: list[list[str]] = [[]]
    sizes = shapes(cfg)
    used = 0
    for name, shape in sizes.items():  # save_pretrained's greedy split, in the class's order
        nbytes = torch.Size(shape).numel() * dt.itemsize
        if groups[-1] and used + nbytes > shard_size:
            groups.append([])
            used = 0
        groups[-1].append(name)
        used += nbytes
    index: dict[str, str] = {}
    for i, names in enumerate(groups):
        file = "model.safetensors" if len(groups) == 1 else f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        _write_random(tmp / file, {n: sizes[n] for n in names}, dt, gen)
        index.update(dict.fromkeys(names, file))
    if len(groups) > 1:
        total = sum(torch.Size(s).numel() * dt.itemsize for s in sizes.values())
        body = {"metadata": {"total_size": total}, "weight_map": index}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(body, indent=2))
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    tmp.rename(folder)


def _write_random(path: Path, shapes: dict[str, tuple[int, ...]], dt: torch.dtype, gen: torch.Generator) -> None:
    """A safetensors file of random weights (normalisation weights 1), written one tensor at
    a time in the order safetensors itself lays tensors out (larger dtypes first, then by
    name), so that a 7B checkpoint never has to fit in memory."""
    from advparams.fingerprint import dtype_tag

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    order = sorted(shapes)
    for name in order:
        nbytes = torch.Size(shapes[name]).numel() * dt.itemsize
        header[name] = {"dtype": dtype_tag(dt), "shape": list(shapes[name]), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head)
        for name in order:
            t = torch.empty(shapes[name], dtype=dt)
            if name.endswith("norm.weight"):
                t.fill_(1.0)
            else:
                t.normal_(0.0, 0.02, generator=gen)
            f.write(t.reshape(-1).view(torch.uint8).numpy().data)
            del t


def hardened_key(folder: Path, dtype: str, secret: bytes, *, uniform: bool = False) -> Any:
    """A hardened key drawn from ``os.urandom``: every tensor of two or more values shuffled,
    dithered as per-user keys need (written by ``lock-write``; the key itself never is)."""
    from advparams.keys.key import Key, Shuffle
    from advparams.schemes.hardened import AUTO_BLOCKED
    from advparams.streaming import read_shard

    shuffles = []
    for shard_file in sorted(folder.glob("*.safetensors")):
        for name, spec in read_shard(shard_file).tensors.items():
            if spec.numel >= 2:
                dither = MANTISSA[dtype] if len(spec.shape) >= 2 else 0
                layout = 2 if spec.numel >= AUTO_BLOCKED and not uniform else 1  # what layout "auto" picks
                shuffles.append(Shuffle(name, spec.numel, spec.numel, dither, layout))
    return Key(entries=(), original_fingerprint="", locked_fingerprint="", scheme="hardened",
               shuffles=tuple(shuffles), secret=secret, info={"benchmark": "scale"})  # fmt: skip


def _copy(src: Path, dst: Path) -> None:
    """Reads every tensor of every shard and writes it back to a new file, flushed."""
    from advparams.streaming import read_shard

    dst.mkdir()
    for shard_file in sorted(src.glob("*.safetensors")):
        shard = read_shard(shard_file)
        fd = os.open(dst / shard_file.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, shard.head)
            for name in shard.tensors:
                t = shard.read(name)
                os.pwrite(fd, t.view(torch.uint8).numpy().data, shard.start + shard.tensors[name].offsets[0])
                del t
            os.fsync(fd)
        finally:
            os.close(fd)


def _aes(src: Path, dst: Path, *, decrypt: bool) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(bytes(range(32)))
    dst.mkdir()
    for f in sorted(src.glob("*.safetensors" if not decrypt else "*.enc")):
        out = dst / (f.name[:-4] if decrypt else f.name + ".enc")
        with open(f, "rb") as fin, open(out, "wb") as fout:
            i = 0
            while True:
                if decrypt:
                    nonce = fin.read(12)
                    if not nonce:
                        break
                    size = int.from_bytes(fin.read(8), "little")
                    fout.write(aes.decrypt(nonce, fin.read(size), None))
                else:
                    block = fin.read(CHUNK)
                    if not block:
                        break
                    nonce = i.to_bytes(12, "little")
                    sealed = aes.encrypt(nonce, block, None)
                    fout.write(nonce + len(sealed).to_bytes(8, "little") + sealed)
                i += 1
            fout.flush()
            os.fsync(fout.fileno())


def run_op(op: str, work: Path, dtype: str) -> dict[str, Any]:
    """Runs ``op`` in this process (called in a fresh one); its seconds and peak memory."""
    from advparams.keys import key_to_bytes, load_key
    from advparams.streaming import folder_fingerprint, lock_folder, unlock_folder

    src, out = work / "src", work / "out"
    start = time.perf_counter()
    if op == "copy":
        _copy(src, out)
    elif op == "aes-encrypt":
        _aes(src, out, decrypt=False)
    elif op == "aes-decrypt":
        _aes(work / "enc", out, decrypt=True)
    elif op == "fingerprint":
        folder_fingerprint(src)
    elif op == "lock-write":
        key = hardened_key(src, dtype, (work / "plan.secret").read_bytes())
        lock_folder(src, key, out, work / "out.key", key_bytes=key_to_bytes)
    elif op == "keys-issue":
        from advparams.keys import save_key
        from advparams.tracing.rowkeys import issue_row_user_key

        save_key(issue_row_user_key(work / "locked", load_key(work / "locked.key"), "user-0"), work / "out.key")
    elif op == "user-unlock":
        unlock_folder(work / "locked", load_key(work / "user.key"), out)
    elif op in ("unlock", "unlock-uniform"):
        locked = "locked" if op == "unlock" else "locked-uniform"
        unlock_folder(work / locked, load_key(work / f"{locked}.key"), out)
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "peak_rss": peak_memory()}
    if op == "keys-issue":
        out["key_bytes"] = (work / "out.key").stat().st_size
    return out


def peak_memory() -> int:
    """This process's peak resident memory in bytes (``VmHWM``: counted from its own start,
    unlike ``ru_maxrss``, which keeps the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _warm(folder: Path) -> None:
    for f in sorted(folder.iterdir()):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def measure(op: str, work: Path, dtype: str) -> dict[str, Any]:
    for p in (work / "out", work / "out.key"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    reads = {"aes-decrypt": "enc", "unlock": "locked", "unlock-uniform": "locked-uniform", "keys-issue": "locked",
             "user-unlock": "locked"}  # fmt: skip
    _warm(work / reads.get(op, "src"))
    cmd = [sys.executable, __file__, "--op", op, "--work", str(work), "--dtypes", dtype]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{op} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["125m"], choices=sorted(SIZES))
    ap.add_argument("--dtypes", nargs="+", default=["float32"], choices=sorted(MANTISSA))
    ap.add_argument("--ops", nargs="+", default=list(DEFAULT_OPS), choices=OPS)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each operation (the table gives the median)")
    ap.add_argument("--shard-size", type=float, default=50.0, help="largest shard in GB (save_pretrained's default)")
    ap.add_argument("--work", type=Path, default=Path("runs/scale"), help="where the checkpoints are built")
    ap.add_argument("--out", help="append the rows to this JSON-lines file")
    ap.add_argument("--table", type=Path, help="print the table of these rows and stop")
    ap.add_argument("--plot", nargs=2, type=Path, metavar=("ROWS", "IMAGE"), help="plot seconds and peak memory")
    ap.add_argument("--op", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.op:
        print(json.dumps(run_op(args.op, args.work, args.dtypes[0])))
        return
    if args.table:
        print(table(read_jsonl(args.table)))
        return
    if args.plot:
        plot(read_jsonl(args.plot[0]), args.plot[1])
        return
    env = environment(torch.device("cpu"))
    for size in args.sizes:
        for dtype in args.dtypes:
            work = args.work / f"{size}-{dtype}"
            log(f"{size} {dtype}: building")
            build(work / "src", size, dtype, int(args.shard_size * 1e9))
            weights = sorted((work / "src").glob("*.safetensors"))
            nbytes = sum(f.stat().st_size for f in weights)
            sizes = shapes(config(size, dtype))
            params = sum(torch.Size(s).numel() for s in sizes.values())
            largest = max(torch.Size(s).numel() for s in sizes.values()) * getattr(torch, dtype).itemsize
            _prepare(work, dtype, ops=args.ops)
            rows = []
            for run in range(args.repeat):  # the operations in turn, so that a slow spell hits them alike
                for op in args.ops:
                    got = measure(op, work, dtype)
                    rows.append({"bench": "scale", "size": size, "dtype": dtype, "params": params, "bytes": nbytes,
                                 "files": len(weights), "largest_tensor_bytes": largest, "op": op, "run": run,
                                 **got, "bytes_per_second": nbytes / got["seconds"], "env": env})  # fmt: skip
                    log(f"{size} {dtype} {op}: {got['seconds']:.1f} s, peak {got['peak_rss'] / 2**30:.2f} GiB")
            append_jsonl(args.out, rows)
            shutil.rmtree(work / "out", ignore_errors=True)


def _prepare(work: Path, dtype: str, *, ops: list[str]) -> None:
    """The encrypted files, the drawn key and the locked folder the timed operations read."""
    from advparams.keys import key_to_bytes
    from advparams.streaming import lock_folder

    if "aes-decrypt" in ops and not (work / "enc").exists():
        _aes(work / "src", work / "enc.partial", decrypt=False)
        (work / "enc.partial").rename(work / "enc")
    if not (work / "plan.secret").exists():
        (work / "plan.secret").write_bytes(os.urandom(32))  # a research file: the benchmark's own drawn secret
    if {"unlock", "keys-issue", "user-unlock"} & set(ops) and not (work / "locked").exists():
        (work / "locked.key").unlink(missing_ok=True)
        key = hardened_key(work / "src", dtype, os.urandom(32))
        lock_folder(work / "src", key, work / "locked", work / "locked.key", key_bytes=key_to_bytes)
    if "user-unlock" in ops and not (work / "user.key").exists():
        from advparams.keys import load_key, save_key
        from advparams.tracing.rowkeys import issue_row_user_key

        save_key(issue_row_user_key(work / "locked", load_key(work / "locked.key"), "user-1"), work / "user.key")
    if "unlock-uniform" in ops and not (work / "locked-uniform").exists():
        (work / "locked-uniform.key").unlink(missing_ok=True)
        key = hardened_key(work / "src", dtype, os.urandom(32), uniform=True)
        lock_folder(work / "src", key, work / "locked-uniform", work / "locked-uniform.key", key_bytes=key_to_bytes)


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per checkpoint, dtype and operation: the median seconds and peak memory over
    its runs, and the ratio to the plain copy's median."""
    out = []
    groups = _by(rows, "size", "dtype", "op")
    for (size, dtype, op), mine in sorted(groups.items(), key=lambda kv: (kv[1][0]["params"], kv[0][1],
                                                                          OPS.index(kv[0][2]))):  # fmt: skip
        secs = [r["seconds"] for r in mine]
        floor = groups.get((size, dtype, "copy"))
        first = mine[0]
        out.append({**first, "op": op, "runs": len(mine), "seconds": _median(secs), "low": min(secs),
                    "high": max(secs), "peak_rss": _median([r["peak_rss"] for r in mine]),
                    "ratio_to_copy": None if not floor else _median(secs) / _median([r["seconds"] for r in floor]),
                    "aes_decrypt": None if (size, dtype, "aes-decrypt") not in groups else
                    _median([r["seconds"] for r in groups[(size, dtype, "aes-decrypt")]])})  # fmt: skip
    return out


TARGETS = {"lock-write", "unlock", "user-unlock"}
"""Operations the issue holds to 1.5 times the plain copy and to AES-256-GCM decryption."""


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| checkpoint | dtype | weights | operation | seconds (median, range) | GB/s | × plain copy | "
           "target: ≤ 1.5 × copy, ≤ AES-GCM decryption | peak memory | ≤ 2 × largest tensor + 1 GiB |",
           "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in summary(rows):
        bound = 2 * r["largest_tensor_bytes"] + 2**30
        ratio = "—" if r["ratio_to_copy"] is None else f"{r['ratio_to_copy']:.2f}"
        verdict = "—"
        if r["op"] in TARGETS and r["ratio_to_copy"] is not None:
            if r["ratio_to_copy"] > 1.5 or (r["aes_decrypt"] is not None and r["seconds"] > r["aes_decrypt"]):
                verdict = "**not met**"
            else:
                verdict = "met" if r["aes_decrypt"] is not None else "1.5 × met; AES not measured"
        spread = f" ({r['low']:.1f}–{r['high']:.1f}, {r['runs']} runs)" if r["runs"] > 1 else ""
        memory = "yes" if r["peak_rss"] <= bound else "**no**"
        keyed = [x["key_bytes"] for x in rows if x["op"] == r["op"] and x["size"] == r["size"]
                 and x["dtype"] == r["dtype"] and "key_bytes" in x]  # fmt: skip
        op = r["op"] + (f" (key {max(keyed) / r['bytes']:.2%} of the weights)" if keyed else "")
        out.append(f"| {r['size']} ({r['params'] / 1e6:,.0f} M) | {r['dtype']} | {r['bytes'] / 1e9:.2f} GB | {op} "
                   f"| {r['seconds']:.1f}{spread} | {r['bytes'] / r['seconds'] / 1e9:.2f} | {ratio} | {verdict} "
                   f"| {r['peak_rss'] / 2**30:.2f} GiB | {memory} ({bound / 2**30:.2f} GiB) |")  # fmt: skip
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Seconds and peak memory of each operation (a colour each; float32 solid, bfloat16
    dashed) against the parameter count (logarithmic; seconds too)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from advparams.reports.plotting import pyplot

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    summed = summary(rows)
    ops = [op for op in OPS if any(r["op"] == op for r in summed)]
    colours = {op: plt.get_cmap("tab10")(i) for i, op in enumerate(ops)}
    for (op, dtype), mine in sorted(_by(summed, "op", "dtype").items()):
        mine.sort(key=lambda r: r["params"])
        xs = [r["params"] for r in mine]
        style = dict(color=colours[op], ls="-" if dtype == "float32" else "--", marker="o", ms=4)
        left.plot(xs, [r["seconds"] for r in mine], label=f"{op} ({dtype})", **style)
        right.plot(xs, [r["peak_rss"] / 2**30 for r in mine], **style)
    sizes = sorted({r["params"] for r in summed})
    for ax, label in ((left, "seconds (median)"), (right, "peak resident memory (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log" if ax is left else "linear")
        ax.set_xticks(sizes, [f"{x / 1e9:.2g} B" if x >= 1e9 else f"{x / 1e6:.0f} M" for x in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("parameters")
        ax.set_ylabel(label)
        ax.grid(True, which="both", lw=0.3)
    right.set_ylim(bottom=0)
    left.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


if __name__ == "__main__":
    main()
