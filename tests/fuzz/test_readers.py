"""Fuzz suite: generated hostile and broken inputs for every file reader.

Each case must either load or raise an :class:`~advparams.errors.AdvParamsError`: any
other exception is a traceback the user would see. A hang guard (SIGALRM,
:data:`HANG_GUARD_S`) fails a case that never ends; it is not a speed target (speed is
measured in ``benchmarks/``). Inputs are both blind mutations of valid files
(bit flips, truncations, insertions, spliced bytes) and structured edits that keep the
file's digest valid (an attacker can recompute it), so that every field check past the
digest is reached: hostile JSON (deep, huge numbers, wrong types, duplicate keys),
hostile shapes and indices, hostile scrypt headers, YAML aliases, pickle opcodes.

The examples are drawn deterministically (``derandomize``) so CI sees the same cases
every run; ``HYPOTHESIS_PROFILE=explore`` draws new ones.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle  # the test writes CIFAR-10's official pickled format; the library never unpickles
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.data import cifar10, fashion_mnist, gtsrb
from advparams.data._pickle_data import loads_data
from advparams.data.synthetic import SIZE
from advparams.errors import AdvParamsError
from advparams.evaluation import load_config
from advparams.keys import Key, key_to_bytes, load_key, unlock
from advparams.keys.io import key_file_digest as key_digest
from advparams.keys.seal import seal
from advparams.models import build_model
from advparams.schemes import SCHEMES
from advparams.testing import tiny_data
from advparams.watermarks import UserTable, load_watermark_key
from advparams.watermarks.base import WatermarkKey
from advparams.watermarks.keyfile import watermark_key_digest as wm_digest
from advparams.watermarks.keyfile import watermark_key_to_bytes
from advparams.watermarks.users import table_digest as users_digest

pytestmark = pytest.mark.fuzz

HANG_GUARD_S = 120
"""Seconds after which a case counts as hung. Cases take well under a second; the guard is
generous so that a loaded machine never fails one, and still ends a reader that loops or
expands a tiny file without end."""
ARGS = {"num_classes": 10, "in_channels": 1, "input_size": SIZE}
CONFIG = Path(__file__).parents[2] / "configs" / "fashion-mnist.yaml"

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Hang(BaseException):
    """A case ran past the hang guard (a BaseException, so no reader's except clause hides it)."""


@contextlib.contextmanager
def hang_guard(seconds: float = HANG_GUARD_S) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"a case ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def clean(fn: Callable[[], Any]) -> Any:
    """Runs one case: its result, or None when it raised an AdvParamsError; anything else fails."""
    try:
        with hang_guard():
            try:
                return fn()
            except AdvParamsError as exc:
                assert str(exc) and "\n" not in str(exc).strip(), repr(exc)
                return None
    except Hang as exc:
        # a plain failure: the interrupted frames (some without a line number) would
        # break pytest's traceback and with it the whole xdist run
        raise AssertionError(f"{exc}: it hung (a hang guard, not a speed target)") from None


# ----------------------------------------------------------------------------- strategies

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**9), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("overwrite"), st.integers(0, 10**9), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, edits: list[tuple[str, int, Any]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in edits:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= arg
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = arg
        else:
            buf[pos : pos + len(arg)] = arg
    return bytes(buf)


HUGE = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 2**64, 10**4000, 1e308, -1e308, 0, -1, 2**31])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    HUGE,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


HOSTILE_JSON = [
    "[" * 33 + "]" * 33,
    "[" * 5000 + "]" * 5000,
    '{"a": ' * 200_000 + "1" + "}" * 200_000,
    '{"a": 1, "a": 2}',
    "NaN",
    "[Infinity]",
    "-Infinity",
    "1e999",
    "[1e400]",
    "1" * 5000,
    '"\\ud800"',
    "",
    "{",
    '{"a": [1, 2',
]
"""JSON texts a safe parser must refuse or bound: deep nesting, duplicate keys, non-finite
and huge numbers, lone surrogates, truncation."""


def hostile_json_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_JSON), json_values.map(json.dumps))


def field_text(draw: st.DrawFn) -> str:
    return draw(st.one_of(hostile_json_text(), st.text(max_size=30)))


# ----------------------------------------------------------------------------- valid samples


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    model = build_model("lenet", ARGS, seed=0)
    data = tiny_data(100)
    shuffled = SCHEMES.build("hardened", {}).lock(model, data)
    perturbed = SCHEMES.build("random", {"max_params": 5}).lock(model, data)
    return {"model": model, "hardened": shuffled, "entries": perturbed}


def write(work: Path, name: str, data: bytes) -> Path:
    path = work / name
    path.write_bytes(data)
    return path


def resigned_key(data: bytes, meta_edits: dict[str, str], tensor_edits: dict[str, torch.Tensor]) -> bytes:
    """A key file with edited metadata or tensors and a recomputed (valid) digest."""
    from advparams.keys.io import key_metadata

    meta, tensors = dict(key_metadata(data)), dict(st_load(data))
    meta.update(meta_edits)
    for k, v in tensor_edits.items():
        if v is None:
            tensors.pop(k, None)
        else:
            tensors[k] = v
    meta["digest"] = key_digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def unlock_or_refuse(path: Path, locked: torch.nn.Module, passphrase: str | None = None) -> None:
    key = load_key(path, passphrase=passphrase)
    assert isinstance(key, Key)
    unlock(locked, key)


# ----------------------------------------------------------------------------- keys


@settings(max_examples=60)
@given(which=st.sampled_from(["hardened", "entries"]), edits=st.lists(mutation, min_size=1, max_size=4))
def test_key_blind_mutations(work, models, which, edits) -> None:
    res = models[which]
    path = write(work, "k.key", mutate(key_to_bytes(res.key), edits))
    clean(lambda: unlock_or_refuse(path, res.model))


@st.composite
def key_field_edits(draw: st.DrawFn, field: str) -> tuple[dict[str, str], dict[str, Any]]:
    meta: dict[str, str] = {}
    tensors: dict[str, Any] = {}
    if field == "shuffles":
        triple = [draw(st.one_of(st.text(max_size=12), json_scalars)) for _ in range(3)]
        meta[field] = draw(st.one_of(st.just(json.dumps([triple])), hostile_json_text()))
    else:
        meta[field] = field_text(draw)
    if draw(st.booleans()):
        name = draw(st.sampled_from(["0.index", "0.original", "0.locked", "secret"]))
        choice = draw(st.integers(0, 4))
        tensors[name] = [
            None,
            torch.tensor([-1, 5, 10**12], dtype=torch.int64),
            torch.zeros(3, dtype=torch.float64),
            torch.zeros((2, 2), dtype=torch.int64),
            torch.tensor([3, 2, 1], dtype=torch.int64),
        ][choice]
    return meta, tensors


@pytest.mark.parametrize("field", ["names", "shuffles", "config", "info", "version", "scheme", "locked_fingerprint"])
@settings(max_examples=10)
@given(which=st.sampled_from(["hardened", "entries"]), data=st.data())
def test_key_structured_edits_with_valid_digest(work, models, field, which, data) -> None:
    res = models[which]
    edit = data.draw(key_field_edits(field))
    data = clean(lambda: resigned_key(key_to_bytes(res.key), *edit))
    if data is not None:
        path = write(work, "k.key", data)
        clean(lambda: unlock_or_refuse(path, res.model))


@st.composite
def sealed_headers(draw: st.DrawFn) -> dict[str, Any]:
    header: dict[str, Any] = {"cipher": "AES-256-GCM", "kdf": "scrypt", "n": 2**15, "r": 8, "p": 1}
    header["salt"] = base64.b64encode(b"s" * 16).decode()
    header["nonce"] = base64.b64encode(b"n" * 12).decode()
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.sampled_from(sorted(header)))
        header[k] = draw(
            st.one_of(
                json_scalars,
                st.sampled_from([2**20, 2**17, 2**16, 3, 1, 32, 16, 4]),
                st.text(max_size=30),
                json_values,
            )
        )
    return header


@pytest.mark.parametrize("kind", ["header", "raw-header", "blind"])
@settings(max_examples=17)
@given(data=st.data())
def test_sealed_key(work, models, kind, data) -> None:
    res = models["hardened"]
    header = data.draw(sealed_headers()) if kind == "header" else None
    raw_header = data.draw(hostile_json_text()) if kind == "raw-header" else None
    edits = data.draw(st.lists(mutation, min_size=1, max_size=3)) if kind == "blind" else []
    sealed = seal(key_to_bytes(res.key), "pw")
    if header is not None or raw_header is not None:
        magic, _, rest = sealed.partition(b"\n")
        _, _, body = rest.partition(b"\n")
        text = raw_header if raw_header is not None else json.dumps(header)
        sealed = magic + b"\n" + text.encode() + b"\n" + body
    path = write(work, "s.key", mutate(sealed, edits) if edits else sealed)
    clean(lambda: unlock_or_refuse(path, res.model, passphrase="pw"))


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def ckpt_files(work, models) -> dict[str, bytes]:
    path = work / "ckpt-template"
    save_checkpoint(models["model"], path, architecture="lenet", arguments=ARGS, dataset="synthetic")
    return {
        "model.json": (path / "model.json").read_bytes(),
        "model.safetensors": (path / "model.safetensors").read_bytes(),
    }


@st.composite
def model_json(draw: st.DrawFn, valid: dict[str, Any], kind: str) -> bytes:
    meta = json.loads(json.dumps(valid))
    if kind == "raw":
        return draw(hostile_json_text()).encode()
    if kind == "argument":
        meta["arguments"][draw(st.sampled_from(["num_classes", "in_channels", "input_size", "width", "x"]))] = draw(
            st.one_of(json_scalars, st.sampled_from([10**7, 10**6, 2**31, 0, -3]), json_values)
        )
        if draw(st.booleans()):
            meta["architecture"] = draw(st.sampled_from(["vgg", "resnet18", "lenet"]))
    else:
        meta[draw(st.sampled_from(sorted(meta)))] = draw(json_values)
    return json.dumps(meta).encode()


@pytest.mark.parametrize("kind", ["field", "argument", "raw", "weights"])
@settings(max_examples=20)
@given(data=st.data())
def test_checkpoint(work, ckpt_files, kind, data) -> None:
    folder = work / "ckpt"
    folder.mkdir(exist_ok=True)
    valid = json.loads(ckpt_files["model.json"])
    if kind != "weights":
        (folder / "model.json").write_bytes(data.draw(model_json(valid, kind)))
        (folder / "model.safetensors").write_bytes(ckpt_files["model.safetensors"])
    else:
        (folder / "model.json").write_bytes(ckpt_files["model.json"])
        edits = data.draw(st.lists(mutation, min_size=1, max_size=3))
        (folder / "model.safetensors").write_bytes(mutate(ckpt_files["model.safetensors"], edits))
    clean(lambda: load_checkpoint(folder))


# ----------------------------------------------------------------------------- watermark keys and user tables


@pytest.fixture(scope="module")
def wm_bytes() -> bytes:
    key = WatermarkKey(
        scheme="zhang-noise",
        images=torch.randint(0, 256, (4, 1, SIZE, SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
        labels=torch.tensor([1, 2, 3, 4]),
        mean=(0.5,),
        std=(0.25,),
        num_classes=10,
    )
    return watermark_key_to_bytes(key)


@pytest.mark.parametrize("kind", ["blind", "fields"])
@settings(max_examples=30)
@given(data=st.data())
def test_watermark_key(work, wm_bytes, kind, data) -> None:
    if kind == "blind":
        blob = mutate(wm_bytes, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    else:
        from advparams.files import safetensors_metadata

        meta, tensors = dict(safetensors_metadata(wm_bytes, what="wm")), dict(st_load(wm_bytes))
        field = data.draw(st.sampled_from(["mean", "std", "num_classes", "config", "scheme", "labels", "images"]))
        if field == "labels":
            tensors["labels"] = data.draw(
                st.sampled_from([torch.tensor([-1, 0, 0, 0]), torch.tensor([99, 0, 0, 0]), torch.zeros(2, 2).long()])
            )
        elif field == "images":
            tensors["images"] = data.draw(st.sampled_from([torch.zeros(4, 3), torch.zeros(4, 2, 3, 3).to(torch.uint8)]))
        else:
            meta[field] = field_text(data.draw)
        meta["digest"] = wm_digest(meta, tensors)
        blob = st_save(tensors, metadata=meta)
    path = write(work, "w.wmkey", blob)
    clean(lambda: load_watermark_key(path))


# ----------------------------------------------------------------------------- ownership fingerprints


@pytest.fixture(scope="module")
def fp_bytes() -> bytes:
    from advparams.fingerprints import Fingerprint
    from advparams.fingerprints.fingerprintfile import fingerprint_to_bytes

    g = torch.Generator().manual_seed(0)
    fp = Fingerprint(
        scheme="infip",
        inputs=torch.randn(4, 1, SIZE, SIZE, generator=g),
        labels=torch.tensor([1, 2, 3, 4]),
        maps=torch.rand(4, 1, SIZE, SIZE, generator=g),
        mean=(0.5,),
        std=(0.25,),
        num_classes=10,
        config={"probes": 4},
    )
    return fingerprint_to_bytes(fp)


@pytest.mark.parametrize("kind", ["blind", "fields"])
@settings(max_examples=30)
@given(data=st.data())
def test_fingerprint_file(work, fp_bytes, kind, data) -> None:
    from advparams.fingerprints import load_fingerprint
    from advparams.fingerprints.fingerprintfile import fingerprint_digest

    if kind == "blind":
        blob = mutate(fp_bytes, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    else:
        from advparams.files import safetensors_metadata

        meta, tensors = dict(safetensors_metadata(fp_bytes, what="fp")), dict(st_load(fp_bytes))
        field = data.draw(
            st.sampled_from(["mean", "std", "num_classes", "config", "scheme", "labels", "inputs", "maps"])
        )
        if field == "labels":
            tensors["labels"] = data.draw(
                st.sampled_from([torch.tensor([-1, 0, 0, 0]), torch.tensor([99, 0, 0, 0]), torch.zeros(2, 2).long()])
            )
        elif field == "inputs":
            tensors["inputs"] = data.draw(
                st.sampled_from([torch.zeros(4, 3), torch.full((4, 1, 2, 2), float("nan")), torch.zeros(0, 1, 2, 2)])
            )
        elif field == "maps":
            tensors["maps"] = data.draw(st.sampled_from([torch.full((4, 1, SIZE, SIZE), 5.0), torch.zeros(4, 2)]))
        else:
            meta[field] = field_text(data.draw)
        meta["digest"] = fingerprint_digest(meta, tensors)
        blob = st_save(tensors, metadata=meta)
    path = write(work, "f.fingerprint", blob)
    clean(lambda: load_fingerprint(path))


@pytest.fixture(scope="module")
def users_body() -> dict[str, Any]:
    t = UserTable()
    for u in ("alice", "bob", "carol"):
        t.register(u)
    return json.loads(t.to_bytes())


@pytest.mark.parametrize("kind", ["field", "user", "raw", "blind"])
@settings(max_examples=20)
@given(data=st.data())
def test_user_table(work, users_body, kind, data) -> None:
    body = json.loads(json.dumps(users_body))
    if kind == "raw":
        text = data.draw(hostile_json_text()).encode()
    elif kind == "blind":
        text = mutate(json.dumps(body).encode(), data.draw(st.lists(mutation, min_size=1, max_size=3)))
    else:
        if kind == "field":
            body[data.draw(st.sampled_from(["bits", "max_errors", "users", "version"]))] = data.draw(
                st.one_of(json_scalars, json_values, st.sampled_from([10**9, 63, 4097, 1e400 if False else 1e300]))
            )
        else:
            name = data.draw(st.sampled_from(["alice", "dave", "", " x"]))
            body["users"][name] = data.draw(
                st.one_of(st.just(body["users"]["bob"]), st.text(max_size=70), json_scalars, st.just("ab" * 32))
            )
        with contextlib.suppress(ValueError, OverflowError):
            body["digest"] = users_digest(body)
        text = json.dumps(body).encode()
    path = write(work, "u.json", text)
    clean(lambda: UserTable.load(path))


# ----------------------------------------------------------------------------- evaluation configs


@st.composite
def configs(draw: st.DrawFn, kind: str) -> bytes:
    raw = yaml.safe_load(CONFIG.read_text())
    if kind == "raw":
        n = draw(st.sampled_from([40, 3000]))
        return draw(st.sampled_from(["name: " + "[" * n + "]" * n, "a: " + "{a: " * n + "}" * n, "- " * n])).encode()
    if kind == "alias":
        width, depth = draw(st.integers(2, 9)), draw(st.integers(2, 12))
        lines = ["a0: &a0 [x, x]"] + [
            f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth)
        ]
        target = draw(st.sampled_from(["seeds", "model_options", "name", "budgets"]))
        return ("\n".join(lines) + f"\n{target}: *a{depth - 1}\nname: x\n").encode()
    text = yaml.safe_dump(raw)
    if kind == "blind":
        return mutate(text.encode(), draw(st.lists(mutation, min_size=1, max_size=4)))
    value = draw(st.one_of(json_scalars, json_values, st.sampled_from(["..", "../x", "a/b", True, [True], 1e400])))
    if kind == "top":
        raw[draw(st.sampled_from(sorted(raw) + ["unknown", "checkpoints", "fpr", "users"]))] = value
    elif kind == "scheme":
        raw["schemes"][0].setdefault("options", {})[draw(st.sampled_from(["max_params", "step", "seed", "zz"]))] = value
    else:
        raw["attacks"][0][draw(st.sampled_from(["options", "grid", "cases", "name"]))] = value
    try:
        return yaml.safe_dump(raw).encode()
    except (yaml.YAMLError, OverflowError, ValueError):
        return b"name: [unclosed"


@pytest.fixture(scope="module")
def config_loaded() -> None:
    """The first load imports every family's config checks (seconds): outside the time limit."""
    load_config(CONFIG)


@pytest.mark.parametrize("kind", ["top", "scheme", "attack", "raw", "alias", "blind"])
@settings(max_examples=14)
@given(data=st.data())
def test_config(work, kind, data, config_loaded) -> None:
    path = write(work, "c.yaml", data.draw(configs(kind)))
    clean(lambda: load_config(path))


# ----------------------------------------------------------------------------- data sets


@pytest.fixture(scope="module")
def cifar_bytes() -> bytes:
    rng = np.random.default_rng(0)
    batch = {b"labels": [int(v) for v in rng.integers(0, 10, 3)], b"data": rng.integers(0, 256, (3, 3072), np.uint8)}
    return pickle.dumps(batch, protocol=2)


OPCODES = list(b"(}])dlt\x85\x86\x87aesup0q12hjgNK\x88\x89IJMLG.TUSXBCRb\x93c\x80\x94\x95\x8c")


def pickle_structure(kind: str, n: int) -> bytes:
    """Small pickles of hostile shape: shared references (2**n leaves), nesting n deep, a
    list that holds itself, a memo that grows."""
    if kind == "references":
        return (
            b"\x80\x02]q\x00"
            + b"".join(
                b"0]r"
                + struct.pack("<I", i + 1)
                + b"(j"
                + struct.pack("<I", i) * 1
                + b"j"
                + struct.pack("<I", i)
                + b"e"
                for i in range(n)
            )
            + b"."
        )
    if kind == "nested":
        return b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."
    if kind == "self":
        return b"\x80\x02]q\x00" + b"h\x00a" * min(n, 50) + b"."
    return b"\x80\x02]" + b"K\x01\x94" * n + b"."  # memoize n values


@pytest.mark.parametrize("kind", ["blind", "opcodes", "structure"])
@settings(max_examples=25)
@given(data=st.data())
def test_cifar_python_batch(work, cifar_bytes, kind, data) -> None:
    if kind == "blind":
        blob = mutate(cifar_bytes, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    elif kind == "structure":
        shape = data.draw(st.sampled_from(["references", "nested", "self", "memo"]))
        blob = pickle_structure(shape, data.draw(st.sampled_from([2, 20, 31, 40, 64, 3000, 20_000])))
    else:  # random opcode streams with small arguments
        ops = data.draw(st.lists(st.sampled_from(OPCODES), min_size=1, max_size=120))
        blob = b"\x80\x02" + b"".join(bytes([o]) + (b"\x00" if o in b"qhKUC" else b"") for o in ops) + b"."
    path = write(work, "data_batch_1", blob)
    clean(lambda: cifar10.read_python_batch(path))
    clean(lambda: loads_data(blob))


@settings(max_examples=30)
@given(size=st.sampled_from([0, 1, 3072, 3073, 3073 * 2, 3073 * 3 + 5]), fill=st.integers(0, 255))
def test_cifar_binary_batch(work, size, fill) -> None:
    path = write(work, "data_batch_1.bin", bytes([fill]) * size)
    clean(lambda: cifar10.read_binary_batch(path))


def gzip_bomb(mib: int) -> bytes:
    """A gzip file that inflates to ``mib`` MiB of zeros (made in chunks: small to hold)."""
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    return b"".join(z.compress(chunk) for _ in range(mib)) + z.flush()


def _ppm(w: int, h: int) -> bytes:
    return f"P6\n{w} {h}\n255\n".encode() + bytes(w * h * 3)


@settings(max_examples=40)
@given(data=st.data())
def test_gtsrb_csv(work, data) -> None:
    root = work / "gtsrb" / "GTSRB"
    folder = root / "Final_Test" / "Images"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "00000.ppm").write_bytes(_ppm(40, 40))
    row = ["00000.ppm", "40", "40", "5", "5", "30", "30", "3"]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(row) - 1))
        row[i] = data.draw(
            st.one_of(
                st.sampled_from(["../../etc/passwd", "/dev/zero", "9" * 40, "-1", "", "43", "x;y", '"']),
                st.text(max_size=12),
            )
        )
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
    text = (header + ";".join(row) + "\n").encode()
    if data.draw(st.booleans()):
        text = mutate(text, data.draw(st.lists(mutation, min_size=1, max_size=2)))
    (root / "GT-final_test.csv").write_bytes(text)
    if data.draw(st.booleans()):
        (folder / "00000.ppm").write_bytes(mutate(_ppm(40, 40), data.draw(st.lists(mutation, min_size=1, max_size=2))))
    clean(lambda: gtsrb.load("test", work / "gtsrb"))


@settings(max_examples=30)
@given(data=st.data())
def test_fashion_mnist_idx(work, data) -> None:
    import gzip

    raw = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in (2, 28, 28)) + bytes(2 * 28 * 28)
    kind = data.draw(st.sampled_from(["mutate-raw", "mutate-gz", "bomb"]))
    if kind == "bomb":
        blob = gzip_bomb(data.draw(st.sampled_from([130, 200, 1024])))
    elif kind == "mutate-raw":
        blob = gzip.compress(mutate(raw, data.draw(st.lists(mutation, min_size=1, max_size=3))))
    else:
        blob = mutate(gzip.compress(raw), data.draw(st.lists(mutation, min_size=1, max_size=3)))
    path = write(work, "train-images-idx3-ubyte.gz", blob)
    clean(lambda: fashion_mnist.read_idx_gz(path))


# ----------------------------------------------------------------------------- special files


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo", "folder"])
def test_special_files_are_refused_by_every_reader(work, target) -> None:
    path = work / f"special-{target.strip('/').replace('/', '-')}"
    if target == "fifo":
        os.mkfifo(path)
    elif target == "folder":
        path.mkdir()
    else:
        os.symlink(target, path)
    readers = [
        lambda: load_key(path),
        lambda: load_watermark_key(path),
        lambda: UserTable.load(path),
        lambda: load_config(path),
        lambda: cifar10.read_python_batch(path),
        lambda: cifar10.read_binary_batch(path),
        lambda: fashion_mnist.read_idx_gz(path),
        lambda: gtsrb.read_ppm(path),
    ]
    for reader in readers:
        assert clean(reader) is None


def test_struct_is_used(work) -> None:
    """A safetensors header that claims more bytes than the file has is refused."""
    path = write(work, "short.key", struct.pack("<Q", 10**12) + b"{}")
    assert clean(lambda: load_key(path)) is None
