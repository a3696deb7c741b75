"""Fuzz suite, part two: hostile inputs for the formats people send each other since the
first part (``test_readers.py``, whose helpers this reuses): trigger files, fingerprint
files, tracing rosters, users' keys (plain and sealed), query files, answers files and the
images ``backdoor apply`` stamps.

Each case must load or raise an :class:`~advparams.errors.AdvParamsError` of one line
without hanging (``clean``), and its memory is bounded: the process's peak resident size
is reset before the case (``/proc/self/clear_refs``) and may grow by at most
:data:`CASE_MIB` over what it held before. Cases are blind mutations (bit flips,
truncations, insertions), structured edits behind a forged (recomputed) digest so that
every check past the digest is reached, wrong types and shapes in the metadata, oversized
counts, huge declared shapes, and non-regular files.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from advparams.backdoors import BACKDOORS, load_trigger
from advparams.backdoors.triggerfile import trigger_digest, trigger_to_bytes
from advparams.data.synthetic import SIZE
from advparams.files import safetensors_metadata, tagged_digest
from advparams.fingerprints import FINGERPRINTS, load_fingerprint, similarity
from advparams.fingerprints.fingerprintfile import fingerprint_digest, fingerprint_to_bytes
from advparams.imaging import png_bytes, read_image
from advparams.keys import Key, key_to_bytes, load_key, unlock
from advparams.keys.seal import seal
from advparams.models import build_model
from advparams.schemes import SCHEMES
from advparams.testing import tiny_data
from advparams.tracing import MarkConfig, QueryConfig, QuerySet, issue_user_key, load_queries, read_answers
from advparams.tracing.queryfile import queries_to_bytes
from advparams.tracing.roster import Roster
from tests.fuzz.test_readers import (
    HOSTILE_JSON,
    clean,
    field_text,
    hostile_json_text,
    json_scalars,
    json_values,
    mutate,
    mutation,
    resigned_key,
    write,
)

pytestmark = pytest.mark.fuzz

ARGS = {"num_classes": 10, "in_channels": 1, "input_size": SIZE}
CASE_MIB = 160
"""The most a case may raise the process's peak memory (MiB) over what it held before."""
IMAGE_MIB = 256
"""... for an image: the largest allowed (4096 x 4096, RGB) is decoded, converted and
copied into a tensor, about five times its 48 MiB."""


def _resident_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


@contextlib.contextmanager
def bounded_memory(mib: int = CASE_MIB) -> Iterator[None]:
    """Fails when the body raises the peak resident size by more than ``mib`` MiB (Linux;
    elsewhere, or where the peak cannot be reset, nothing is measured)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size
        before = _resident_kib("VmRSS")
    except OSError:
        yield
        return
    yield
    grew = (_resident_kib("VmHWM") - before) // 1024
    assert grew <= mib, f"a case raised peak memory by {grew} MiB (at most {mib})"


def refused_or_read(fn: Callable[[], Any], mib: int = CASE_MIB) -> Any:
    """``clean`` (one-line AdvParamsError or a result, under the hang guard) with bounded memory."""
    with bounded_memory(mib):
        return clean(fn)


def forged_safetensors(header: dict[str, Any], body: bytes) -> bytes:
    """A safetensors file with this header written by hand (shapes and offsets as given)."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def resign(data: bytes, digest: Callable[[dict[str, str], dict[str, torch.Tensor]], str], edit: Any) -> bytes:
    """``data`` with its metadata and tensors edited by ``edit(meta, tensors)`` and its digest recomputed."""
    meta, tensors = dict(safetensors_metadata(data, what="file")), dict(st_load(data))
    edit(meta, tensors)
    meta["digest"] = digest(meta, tensors)
    return st_save(tensors, metadata=meta)


def huge_shape_header(data: bytes, name: str, shape: list[int], dtype: str) -> bytes:
    """``data``'s header with tensor ``name`` claiming ``shape`` (offsets to match, body unchanged)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    size = {"U8": 1, "F32": 4, "I64": 8}[dtype]
    start = header[name]["data_offsets"][0]
    numel = 1
    for d in shape:
        numel *= d
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [start, start + numel * size]}
    return forged_safetensors(header, data[8 + n :])


HUGE_SHAPES = st.sampled_from(
    [[100_000, 100_000], [3, 8150, 8150], [2**40, 2**40], [0, 10**12], [1] * 9, [-1, 4], [4, 4], [2**62, 4]]
)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-formats")


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    return build_model("lenet", ARGS, seed=0).eval()


@pytest.fixture(scope="module")
def triggers() -> dict[str, bytes]:
    out = {}
    for name, channels in (("badnets", 1), ("blend", 1), ("dct", 3)):
        bd = BACKDOORS.build(name, dict(BACKDOORS.get(name).tiny))
        trig = bd.make_trigger((channels, SIZE, SIZE), 10, torch.Generator().manual_seed(0))
        out[name] = trigger_to_bytes(trig, backdoor=name, config=bd.config_dict())
    return out


@pytest.fixture(scope="module")
def fingerprints(tiny_model: torch.nn.Module) -> dict[str, bytes]:
    data = tiny_data(60)
    return {
        n: fingerprint_to_bytes(FINGERPRINTS.build(n, dict(FINGERPRINTS.get(n).tiny)).extract(tiny_model, data))
        for n in FINGERPRINTS.names()
    }


@pytest.fixture(scope="module")
def traced() -> dict[str, Any]:
    """A dithered hardened lock of LeNet-5, a user's key, a roster and a query file."""
    model = build_model("lenet", ARGS, seed=0)
    res = SCHEMES.build("hardened", {"dither": 23}).lock(model, tiny_data(100))
    mark = MarkConfig(positions=64)
    user_key = issue_user_key(res.model, res.key, "alice", mark)
    g = torch.Generator().manual_seed(0)
    queries = QuerySet(
        inputs=torch.randn(8, 1, SIZE, SIZE, generator=g),
        code="sha256:" + "ab" * 32,
        original="sha256:" + "cd" * 32,
        mark=mark,
        config=QueryConfig(queries=8),
    )
    return {
        "locked": res.model,
        "key": key_to_bytes(user_key),
        "sealed": seal(key_to_bytes(user_key), "pw"),
        "roster": Roster(mark).add("alice", "bob", "carol").to_bytes(),
        "queries": queries_to_bytes(queries),
    }


# ----------------------------------------------------------------------------- trigger files


def _load_and_stamp(path: Path) -> None:
    trigger = load_trigger(path).trigger
    for i in range(min(len(trigger), 3)):
        trigger.apply(torch.zeros(1, trigger.channels, SIZE, SIZE, dtype=torch.uint8), i)


@st.composite
def trigger_edits(draw: st.DrawFn) -> Callable[[dict[str, str], dict[str, torch.Tensor]], None]:
    field = draw(st.sampled_from(["targets", "params", "config", "channels", "kind", "backdoor", "tensor", "count"]))
    if field == "tensor":
        name = draw(st.sampled_from(["pattern", "mask", "extra"]))
        value = draw(
            st.sampled_from(
                [
                    torch.zeros(3, 3),
                    torch.zeros(1, 1, 5000, dtype=torch.uint8),
                    torch.zeros(1, 0, 3, dtype=torch.uint8),
                    torch.full((3, 3), 7, dtype=torch.uint8),
                    torch.zeros(2, 2, 2, 2, dtype=torch.uint8),
                    torch.zeros(1, 16, 16, dtype=torch.uint8),
                    torch.zeros(3, 16, 16, dtype=torch.int64),
                ]
            )
        )
        return lambda m, t: t.__setitem__(name, value)
    if field == "count":
        n = draw(st.sampled_from([1001, 100_000, 2_000_000]))
        what = draw(st.sampled_from(["targets", "params", "config"]))
        text = json.dumps([0] * n if what == "targets" else {"x": [0] * n}, separators=(",", ":"))
        return lambda m, t: m.__setitem__(what, text)
    text = field_text(draw) if draw(st.booleans()) else json.dumps(draw(json_values))
    return lambda m, t: m.__setitem__(field, text)


@pytest.mark.parametrize("kind", ["blind", "fields", "shapes"])
@settings(max_examples=25)
@given(data=st.data())
def test_trigger_file(work, triggers, kind, data) -> None:
    blob = triggers[data.draw(st.sampled_from(sorted(triggers)))]
    if kind == "blind":
        blob = mutate(blob, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    elif kind == "fields":
        blob = resign(blob, trigger_digest, data.draw(trigger_edits()))
    else:
        if not st_load(blob):  # a DCT trigger holds no tensor to enlarge
            blob = triggers["badnets"]
        name = data.draw(st.sampled_from(sorted(st_load(blob))))
        blob = huge_shape_header(blob, name, data.draw(HUGE_SHAPES), data.draw(st.sampled_from(["U8", "F32"])))
    path = write(work, "t.trigger", blob)
    refused_or_read(lambda: _load_and_stamp(path))


# ----------------------------------------------------------------------------- fingerprint files


@pytest.mark.parametrize("kind", ["blind", "fields", "shapes", "counts"])
@settings(max_examples=15)
@given(data=st.data())
def test_fingerprint_file_and_scoring(work, fingerprints, tiny_model, kind, data) -> None:
    """Blind and field cases are in test_readers.py; these also score the model against
    what was read, so that a file that loads cannot make the scoring unbounded."""
    blob = fingerprints[data.draw(st.sampled_from(sorted(fingerprints)))]
    if kind == "blind":
        blob = mutate(blob, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    elif kind == "fields":
        field = data.draw(st.sampled_from(["config", "num_classes", "mean", "scheme", "model_fingerprint"]))
        text = field_text(data.draw)
        blob = resign(blob, fingerprint_digest, lambda m, t: m.__setitem__(field, text))
    elif kind == "shapes":
        name = data.draw(st.sampled_from(sorted(st_load(blob))))
        dtype = data.draw(st.sampled_from(["F32", "I64"]))
        blob = huge_shape_header(blob, name, data.draw(HUGE_SHAPES) + [1, 1][: data.draw(st.integers(0, 2))], dtype)
    else:  # valid files of hostile sizes: more probes than allowed, sides over the cap, other shapes
        n, c, side = data.draw(
            st.sampled_from([(100_001, 1, 1), (1, 1, 1025), (2, 1, 40), (2, 3, SIZE), (1, 1, 1), (3, 1, 8)])
        )

        def sized(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
            tensors["inputs"] = torch.zeros(n, c, side, side)
            tensors["labels"] = torch.zeros(n, dtype=torch.int64)
            if "maps" in tensors:
                tensors["maps"] = torch.full((n, 1, side, side), 0.5)
            meta.update(mean=json.dumps([0.5] * c), std=json.dumps([0.5] * c))

        blob = resign(blob, fingerprint_digest, sized)
    path = write(work, "f.fingerprint", blob)

    def load_and_score() -> float:
        fp = load_fingerprint(path)
        fp.check_takes((1, SIZE, SIZE))
        return similarity(tiny_model, fp)

    refused_or_read(load_and_score)


# ----------------------------------------------------------------------------- rosters


def _roster_digest(body: dict[str, Any]) -> str:
    content = {k: v for k, v in body.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("kind", ["blind", "raw", "field", "users", "mark"])
@settings(max_examples=20)
@given(data=st.data())
def test_roster(work, traced, kind, data) -> None:
    valid = json.loads(traced["roster"])
    if kind == "blind":
        text = mutate(traced["roster"], data.draw(st.lists(mutation, min_size=1, max_size=4)))
    elif kind == "raw":
        text = data.draw(hostile_json_text()).encode()
    else:
        body = json.loads(json.dumps(valid))
        if kind == "field":
            body[data.draw(st.sampled_from(["format", "version", "mark", "users", "extra"]))] = data.draw(json_values)
        elif kind == "users":
            body["users"] = data.draw(
                st.one_of(
                    st.lists(st.one_of(st.text(max_size=8), json_scalars), max_size=6),
                    st.sampled_from([["a"] * 3, [" a"], ["x" * 201], ["a\0"], [str(i) for i in range(100_001)]]),
                )
            )
        else:
            body["mark"][data.draw(st.sampled_from([*valid["mark"], "extra"]))] = data.draw(
                st.one_of(json_scalars, json_values, st.sampled_from([10**9, 0, -1, 1e300, ["*"] * 3, "*"]))
            )
        with contextlib.suppress(ValueError, OverflowError):
            body["digest"] = _roster_digest(body)
        text = json.dumps(body).encode()
    path = write(work, "roster.json", text)
    refused_or_read(lambda: Roster.load(path))


def test_roster_with_a_huge_integer_setting(work, traced) -> None:
    body = json.loads(traced["roster"])
    body["mark"]["strength"] = 10**400
    body["digest"] = _roster_digest(body)
    path = write(work, "huge-strength.json", json.dumps(body).encode())
    assert refused_or_read(lambda: Roster.load(path)) is None


# ----------------------------------------------------------------------------- users' keys


def _unlock_user_key(path: Path, locked: torch.nn.Module, passphrase: str | None = None) -> None:
    key = load_key(path, passphrase=passphrase)
    assert isinstance(key, Key)
    unlock(locked, key)


@pytest.mark.parametrize("kind", ["blind", "fields", "shapes"])
@settings(max_examples=15)
@given(data=st.data())
def test_user_key(work, traced, kind, data) -> None:
    blob = traced["key"]
    if kind == "blind":
        blob = mutate(blob, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    elif kind == "fields":
        field = data.draw(st.sampled_from(["names", "info", "config", "scheme", "original_fingerprint", "version"]))
        tensor = data.draw(st.sampled_from([{}, {"0.index": torch.tensor([10**12])}, {"0.original": torch.zeros(3)}]))
        blob = clean(lambda: resigned_key(blob, {field: field_text(data.draw)}, tensor)) or blob
    else:
        name = data.draw(st.sampled_from(sorted(st_load(blob))))
        blob = huge_shape_header(blob, name, data.draw(HUGE_SHAPES), data.draw(st.sampled_from(["F32", "I64"])))
    path = write(work, "alice.key", blob)
    refused_or_read(lambda: _unlock_user_key(path, traced["locked"]))


@settings(max_examples=10)
@given(edits=st.lists(mutation, min_size=1, max_size=3))
def test_sealed_user_key(work, traced, edits) -> None:
    path = write(work, "alice-sealed.key", mutate(traced["sealed"], edits))
    refused_or_read(lambda: _unlock_user_key(path, traced["locked"], passphrase="pw"))


# ----------------------------------------------------------------------------- query and answers files


def _queries_digest(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    return tagged_digest(b"advparams-trace-queries-digest-v1\0", meta, tensors)


@pytest.mark.parametrize("kind", ["blind", "fields", "tensor", "shapes"])
@settings(max_examples=20)
@given(data=st.data())
def test_query_file(work, traced, kind, data) -> None:
    blob = traced["queries"]
    if kind == "blind":
        blob = mutate(blob, data.draw(st.lists(mutation, min_size=1, max_size=4)))
    elif kind == "fields":
        field = data.draw(st.sampled_from(["code", "original", "mark", "config", "format", "version"]))
        if field == "config" and data.draw(st.booleans()):
            text = json.dumps({**json.loads(safetensors_metadata(blob, what="q")["config"]), "queries": 9})
        else:
            text = field_text(data.draw)
        blob = resign(blob, _queries_digest, lambda m, t: m.__setitem__(field, text))
    elif kind == "tensor":
        value = data.draw(
            st.sampled_from(
                [
                    torch.zeros(8),
                    torch.zeros(8, 1, SIZE, SIZE, dtype=torch.float64),
                    torch.full((8, 1, SIZE, SIZE), float("nan")),
                    torch.zeros(0, 1, SIZE, SIZE),
                    torch.zeros(9, 1, SIZE, SIZE),
                ]
            )
        )
        blob = resign(blob, _queries_digest, lambda m, t: t.__setitem__("inputs", value))
    else:
        blob = huge_shape_header(blob, "inputs", data.draw(HUGE_SHAPES), "F32")
    path = write(work, "q.queries", blob)
    refused_or_read(lambda: load_queries(path))


@pytest.mark.parametrize("kind", ["raw", "values", "huge", "blind"])
@settings(max_examples=20)
@given(data=st.data())
def test_answers_file(work, kind, data) -> None:
    count = 8
    if kind == "raw":
        text = data.draw(st.one_of(st.sampled_from(HOSTILE_JSON), hostile_json_text())).encode()
    elif kind == "values":
        answers = data.draw(st.lists(st.one_of(st.integers(0, 9), json_scalars, json_values), max_size=10))
        text = json.dumps({"answers": answers} if data.draw(st.booleans()) else answers).encode()
    elif kind == "huge":
        n = data.draw(st.sampled_from([9, 10**6, 5 * 10**6, 8 * 10**6]))
        text = ("[" + ",".join(["0"] * n) + "]").encode()
    else:
        text = mutate(json.dumps({"answers": list(range(count))}).encode(), data.draw(st.lists(mutation, min_size=1)))
    path = write(work, "answers.json", text)
    refused_or_read(lambda: read_answers(path, count))


# ----------------------------------------------------------------------------- images for backdoor apply


def _image_bytes(fmt: str) -> bytes:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    arr = torch.randint(0, 256, (24, 20, 3), generator=g, dtype=torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB").save(buf, format=fmt)
    return buf.getvalue()


def _png(width: int, height: int, pixels: bytes = b"") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(pixels, 9)) + chunk(b"IEND", b"")


def _huge_claim(fmt: str, side: int) -> bytes:
    """A small file whose header claims a ``side x side`` image."""
    if fmt == "PNG":
        return _png(side, side)
    if fmt == "PPM":
        return f"P6\n{side} {side}\n255\n".encode() + bytes(64)
    if fmt == "BMP":
        blob = bytearray(_image_bytes("BMP"))
        blob[18:26] = struct.pack("<ii", side, side)
        return bytes(blob)
    if fmt == "GIF":
        blob = bytearray(_image_bytes("GIF"))
        blob[6:10] = struct.pack("<HH", min(side, 65535), min(side, 65535))
        return bytes(blob)
    return b"P5\n" + f"{side} {side}\n65535\n".encode()


IMAGE_KINDS = ["PNG", "JPEG", "WEBP", "PPM", "BMP", "GIF", "TIFF"]


@pytest.mark.parametrize("kind", ["blind", "claims", "bomb"])
@settings(max_examples=25)
@given(data=st.data())
def test_image_for_backdoor_apply(work, kind, data) -> None:
    if kind == "blind":
        blob = mutate(_image_bytes(data.draw(st.sampled_from(IMAGE_KINDS))), data.draw(st.lists(mutation, min_size=1)))
    elif kind == "claims":
        fmt = data.draw(st.sampled_from(["PNG", "PPM", "BMP", "GIF", "PGM"]))
        blob = _huge_claim(fmt, data.draw(st.sampled_from([0, 4097, 10_000, 60_000, 2**31 - 1])))
    else:  # a compressed stream that inflates far beyond its header, or to the largest image allowed
        side = data.draw(st.sampled_from([4096, 9000]))
        blob = _png(side, 64, bytes(10**6)) if side == 9000 else _png(4096, 4096, bytes((4096 + 1) * 4096))
    path = write(work, "img", blob)
    channels = data.draw(st.sampled_from([1, 3]))
    refused_or_read(lambda: read_image(path, channels), mib=IMAGE_MIB)


def test_a_valid_image_is_read(work) -> None:
    x = torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path = write(work, "ok.png", png_bytes(x))
    assert torch.equal(refused_or_read(lambda: read_image(path, 3)), x)


# ----------------------------------------------------------------------------- oversized counts, one by one


def _write_big(path: Path, head: bytes, zeros: int) -> Path:
    """``head`` then ``zeros`` zero bytes, written in steps (the test itself holds little)."""
    with open(path, "wb") as f:
        f.write(head)
        for _ in range(zeros // (1 << 20)):
            f.write(bytes(1 << 20))
        f.write(bytes(zeros % (1 << 20)))
    return path


def _compact_zeros(n: int) -> str:
    return "[" + ",".join(["0"] * n) + "]"


def test_oversized_counts_cost_a_scan_not_their_values(work, fingerprints) -> None:
    """The headline cases, each refused within its file's size plus 64 MiB: a trigger file of
    seven million targets (was 811 MiB), an answers file of eight million answers (was a
    hang past 5 s), a roster of a million users, a fingerprint file of one 3900x3900 probe
    (61 MB; was 1.65 GB through the model)."""
    targets = json.dumps([0] * 7_000_000, separators=(",", ":"))
    cases: list[tuple[Path, Callable[[Path], Any]]] = []
    trigger_meta = {"format": "advparams-trigger", "version": "1", "kind": "patch", "targets": targets}
    trigger_meta |= {"channels": "1", "params": '{"row": -1, "col": -1}', "backdoor": "", "config": "{}"}
    tensors = {"pattern": torch.zeros(1, 3, 3, dtype=torch.uint8), "mask": torch.ones(3, 3, dtype=torch.uint8)}
    trigger_meta["digest"] = trigger_digest(trigger_meta, tensors)
    cases.append((write(work, "many.trigger", st_save(tensors, metadata=trigger_meta)), load_trigger))
    del targets, trigger_meta
    cases.append((write(work, "many.json", _compact_zeros(8_000_000).encode()), lambda p: read_answers(p, 8)))
    users = {"format": "advparams-trace-users", "version": 1, "mark": {}, "users": [f"u{i}" for i in range(10**6)]}
    cases.append((write(work, "many-users.json", json.dumps(users).encode()), Roster.load))
    del users
    side = 3900
    n = int.from_bytes(fingerprints["ipguard"][:8], "little")
    header = json.loads(fingerprints["ipguard"][8 : 8 + n])
    header["inputs"] = {"dtype": "F32", "shape": [1, 1, side, side], "data_offsets": [0, 4 * side * side]}
    header["labels"] = {"dtype": "I64", "shape": [1], "data_offsets": [4 * side * side, 4 * side * side + 8]}
    text = json.dumps(header).encode()
    big = _write_big(work / "big.fingerprint", struct.pack("<Q", len(text)) + text, 4 * side * side + 8)
    cases.append((big, load_fingerprint))
    for path, reader in cases:
        bound = path.stat().st_size // 2**20 + 64
        assert refused_or_read(lambda p=path, r=reader: r(p), mib=bound) is None, path


def test_a_query_file_of_huge_queries_is_refused_from_its_header(work, traced) -> None:
    side = 4000
    n = int.from_bytes(traced["queries"][:8], "little")
    header = json.loads(traced["queries"][8 : 8 + n])
    header["inputs"] = {"dtype": "F32", "shape": [1, 1, side, side], "data_offsets": [0, 4 * side * side]}
    text = json.dumps(header).encode()
    path = _write_big(work / "big.queries", struct.pack("<Q", len(text)) + text, 4 * side * side)
    assert refused_or_read(lambda: load_queries(path), mib=path.stat().st_size // 2**20 + 64) is None


# ----------------------------------------------------------------------------- special files


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo", "folder", "dangling"])
def test_special_files_are_refused_by_every_reader_of_these_formats(work, target) -> None:
    path = work / f"special-{target.strip('/').replace('/', '-')}"
    if not os.path.lexists(path):
        if target == "fifo":
            os.mkfifo(path)
        elif target == "folder":
            path.mkdir()
        elif target == "dangling":
            os.symlink(work / "nothing-here", path)
        else:
            os.symlink(target, path)
    readers = [
        lambda: load_trigger(path),
        lambda: load_fingerprint(path),
        lambda: Roster.load(path),
        lambda: load_key(path),
        lambda: load_key(path, passphrase="pw"),
        lambda: load_queries(path),
        lambda: read_answers(path, 8),
        lambda: read_image(path, 1),
    ]
    for reader in readers:
        assert refused_or_read(reader) is None
