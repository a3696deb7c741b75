"""Regression tests for hostile and broken inputs: each example of the failure classes that
a systematic try found (lost keys, tiny files that exhaust memory or time, tracebacks,
writes where they should not be, integrity and secrecy). Every case ends in one
``advparams: error:`` line and exit 1, losing nothing. A hang guard fails a case that never
ends; no case is timed (speed is measured in ``benchmarks/``)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advparams.checkpoint import load_checkpoint, save_checkpoint
from advparams.data.synthetic import SIZE
from advparams.errors import AdvParamsError, CheckpointError, ConfigError, DataError, KeyFileError, UserTableError
from advparams.evaluation import load_config
from advparams.fingerprint import model_fingerprint
from advparams.keys import load_key, unlock
from advparams.models import build_model
from advparams.watermarks import UserTable
from tests.unit.cli_helpers import run

ARGS = {"num_classes": 10, "in_channels": 1, "input_size": SIZE}
CONFIG = Path(__file__).parents[2] / "configs" / "fashion-mnist.yaml"


HANG_GUARD_S = 300
"""Seconds after which a case counts as hung. Each takes well under a second; the guard is
generous so that a loaded machine never fails one, and still ends a tiny file that makes a
reader loop or expand without end."""


class _Hang(BaseException):
    """A case ran past the hang guard (a BaseException, so no except clause under test hides it)."""


@contextlib.contextmanager
def hang_guard(what: str, seconds: float = HANG_GUARD_S) -> Iterator[None]:
    """Fails ``what`` if it runs past ``seconds``: a hang guard, not a speed target."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Hang

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Hang:
        # a plain failure: the interrupted frames would break pytest's traceback
        raise AssertionError(f"{what} ran past {seconds} s: it hung (a hang guard, not a speed target)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def one_error(capsys, *argv, match: str = "") -> str:
    with hang_guard(f"advparams {' '.join(map(str, argv))[:200]}"):
        code, _, err = run(capsys, *argv)
    lines = [line for line in err.strip().splitlines() if line and "WARNING" not in line]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("advparams: error: "), err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "model"
    save_checkpoint(build_model("lenet", ARGS, seed=0), path, architecture="lenet", arguments=ARGS, dataset="synthetic")
    return path


def lock(capsys, ckpt, out, key, *extra):
    # an untrained model: nothing to lock, accepted with --allow-partial (these tests are about the files)
    argv = ["lock", ckpt, "--scheme", "hardened", "--out", out, "--key", key, "--no-eval", "--allow-partial"]
    code, _, err = run(capsys, *argv, *extra)
    assert code == 0, err


def unlocks(locked, key) -> bool:
    model = load_checkpoint(locked).model
    return model_fingerprint(unlock(model, load_key(key))) == load_key(key).original_fingerprint


# ----------------------------------------------------------------------------- 1. a key can be lost


def test_failed_model_write_keeps_the_previous_key(capsys, tmp_path, ckpt) -> None:
    out, key = tmp_path / "L", tmp_path / "k.key"
    lock(capsys, ckpt, out, key)
    before = key.read_bytes()
    one_error(capsys, "lock", ckpt, "--out", tmp_path / ("x" * 250), "--key", key, "--force", "--no-eval")
    assert key.read_bytes() == before and unlocks(out, key)


def test_key_inside_the_output_folder_is_refused(capsys, tmp_path, ckpt) -> None:
    out = tmp_path / "L"
    lock(capsys, ckpt, out, tmp_path / "k.key")
    one_error(capsys, "lock", ckpt, "--out", out, "--key", out / "secret.key", "--force", match="must not lie inside")
    assert unlocks(out, tmp_path / "k.key")


def test_force_replacement_leaves_a_working_pair_and_no_leftovers(capsys, tmp_path, ckpt) -> None:
    out, key = tmp_path / "L", tmp_path / "k.key"
    lock(capsys, ckpt, out, key)
    old = load_key(key).locked_fingerprint
    lock(capsys, ckpt, out, key, "--force")
    assert load_key(key).locked_fingerprint != old and unlocks(out, key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["L", "k.key", "model"]


# ----------------------------------------------------------------------------- 2. tiny files, huge costs


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_key_symlinked_to_a_device(capsys, tmp_path, ckpt, device) -> None:
    os.symlink(device, tmp_path / "k.key")
    one_error(capsys, "key-info", tmp_path / "k.key", match="not a regular file")
    one_error(capsys, "unlock", ckpt, "--key", tmp_path / "k.key", "--out", tmp_path / "o", match="not a regular file")


def test_key_that_is_a_fifo(capsys, tmp_path) -> None:
    os.mkfifo(tmp_path / "k.key")
    one_error(capsys, "key-info", tmp_path / "k.key", match="not a regular file")


def test_model_description_symlinked_to_dev_zero(capsys, ckpt) -> None:
    (ckpt / "model.json").unlink()
    os.symlink("/dev/zero", ckpt / "model.json")
    one_error(capsys, "evaluate", ckpt, match="not a regular file")


def _sealed(tmp_path, header: dict) -> os.PathLike:
    body = {"cipher": "AES-256-GCM", "kdf": "scrypt", "salt": base64.b64encode(b"s" * 16).decode()}
    body |= {"nonce": base64.b64encode(b"n" * 12).decode(), **header}
    path = tmp_path / "sealed.key"
    path.write_bytes(b"ADVPARAMS-SEALED-KEY v1\n" + json.dumps(body).encode() + b"\n" + b"x" * 64)
    return path


def test_sealed_header_asking_for_huge_scrypt_work(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADVPARAMS_PASSPHRASE", "pw")
    path = _sealed(tmp_path, {"n": 2**20, "r": 32, "p": 16})
    one_error(capsys, "key-info", path, match="scrypt")
    path = _sealed(tmp_path, {"n": 2**17, "r": 16, "p": 4})  # each within its own cap, not together
    one_error(capsys, "key-info", path, match="over the cap")


def _references(levels: int) -> bytes:
    """A pickle where each list holds the one before it twice: ``2**levels`` leaves."""
    body = b"".join(b"0]q%c(h%ch%ce" % (i + 1, i, i) for i in range(levels))
    return b"\x80\x02]q\x00" + body + b"."


def test_cifar_batch_of_shared_references() -> None:
    from advparams.data._pickle_data import loads_data

    data = _references(36)
    assert len(data) < 372
    # 2**36 leaves walked one by one would never end: the guard catches that regression
    with hang_guard("loads_data of shared references"):
        with pytest.raises(DataError, match="nested more than"):
            loads_data(data)
        legal = loads_data(_references(30))  # 2**30 leaves, finished once per shared list
    assert legal[0] is legal[1] and len(legal) == 2


def test_cifar_batch_that_contains_itself(tmp_path) -> None:
    from advparams.data._pickle_data import loads_data

    with pytest.raises(DataError, match="contains itself"):
        loads_data(b"\x80\x02]q\x00h\x00a.")  # a list appended to itself


def test_yaml_alias_bomb(capsys, tmp_path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\nname: x\n")
    assert (tmp_path / "bomb.yaml").stat().st_size <= 650
    one_error(capsys, "evaluate-protection", "--config", tmp_path / "bomb.yaml", "--no-plots", match="values")


def test_user_table_declaring_a_billion_bits(tmp_path) -> None:
    body = {"format": "advparams-users", "version": 1, "bits": 10**9, "max_errors": 16, "users": {}}
    from advparams.watermarks.users import table_digest

    body["digest"] = table_digest(body)
    (tmp_path / "t.json").write_text(json.dumps(body))
    with pytest.raises(UserTableError, match="bits"):
        UserTable.load(tmp_path / "t.json")


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"num_classes": 10**7}, "num_classes must be an integer in [1, 1000000]"),  # the shape bounds, first
        ({"width": 10**6}, "belong to another model"),
        ({"input_size": 10**6}, "input_size must be an integer in [1, 65536]"),
    ],
)
def test_model_arguments_that_would_allocate_gigabytes(capsys, tmp_path, arguments, match) -> None:
    arch = "vgg" if "width" in arguments else "lenet"
    path = tmp_path / "m"
    save_checkpoint(build_model(arch, ARGS, seed=0), path, architecture=arch, arguments=ARGS, dataset="synthetic")
    meta = json.loads((path / "model.json").read_text())
    meta["arguments"].update(arguments)
    (path / "model.json").write_text(json.dumps(meta))
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    one_error(capsys, "evaluate", path, match=match)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing was allocated


# ----------------------------------------------------------------------------- 3. tracebacks


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deep_json_everywhere(capsys, tmp_path, ckpt) -> None:
    deep = _nested(100_000)
    # key header
    header = ('{"__metadata__": {"format": "advparams-key"}, "x": ' + deep + "}").encode()
    (tmp_path / "a.key").write_bytes(struct.pack("<Q", len(header)) + header)
    one_error(capsys, "key-info", tmp_path / "a.key", match="nested too deeply")
    # a key metadata field, with the digest recomputed as an attacker would
    lock(capsys, ckpt, tmp_path / "L", tmp_path / "k.key")
    for field in ("config", "info", "names", "shuffles"):
        (tmp_path / "b.key").write_bytes(_edited_key(tmp_path / "k.key", **{field: deep}))
        one_error(capsys, "key-info", tmp_path / "b.key", match="nested too deeply")
        with pytest.raises(KeyFileError, match="nested too deeply"):
            load_key(tmp_path / "b.key")
    # sealed header
    (tmp_path / "s.key").write_bytes(b"ADVPARAMS-SEALED-KEY v1\n" + _nested(1000).encode() + b"\n" + b"x" * 32)
    os.environ["ADVPARAMS_PASSPHRASE"] = "pw"
    try:
        one_error(capsys, "key-info", tmp_path / "s.key", match="sealed key file")
    finally:
        del os.environ["ADVPARAMS_PASSPHRASE"]
    # model.json
    (ckpt / "model.json").write_text('{"format": "advparams-checkpoint", "record": ' + deep + "}")
    one_error(capsys, "evaluate", ckpt, match="nested too deeply")
    # user table
    (tmp_path / "u.json").write_text('{"users": ' + deep + "}")
    one_error(capsys, "watermark", "users", "list", tmp_path / "u.json", match="nested too deeply")
    # watermark key
    header = ('{"__metadata__": {"format": "advparams-watermark", "x": ' + deep + "}}").encode()
    (tmp_path / "w.wmkey").write_bytes(struct.pack("<Q", len(header)) + header)
    one_error(capsys, "watermark", "verify", ckpt, "--key", tmp_path / "w.wmkey", "--null", ckpt, match="too deeply")


def test_deep_yaml(capsys, tmp_path) -> None:
    (tmp_path / "deep.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    one_error(capsys, "evaluate-protection", "--config", tmp_path / "deep.yaml", "--no-plots", match="too deeply")


def _edited_key(key_path, **changes) -> bytes:
    """The key file at ``key_path`` with metadata fields changed and its digest recomputed
    (an attacker can recompute it: the digest is no signature)."""
    from safetensors.torch import load, save

    from advparams.keys.io import key_file_digest, key_metadata

    data = key_path.read_bytes()
    meta, tensors = key_metadata(data), load(data)
    meta.update(changes)
    meta["digest"] = key_file_digest(meta, tensors)
    return save(tensors, metadata=meta)


@pytest.mark.parametrize(
    "shuffles",
    ['[["conv.weight", 1e999, 5]]', '[["w", 100000000000000000000000000000, 2]]', '[["w", 10, 20]]', '[["w", -5, 2]]'],
)
def test_out_of_range_numbers_in_key_metadata(capsys, tmp_path, ckpt, shuffles) -> None:
    lock(capsys, ckpt, tmp_path / "L", tmp_path / "k.key")
    (tmp_path / "bad.key").write_bytes(_edited_key(tmp_path / "k.key", shuffles=shuffles))
    one_error(capsys, "key-info", tmp_path / "bad.key", match="key file")
    one_error(capsys, "unlock", tmp_path / "L", "--key", tmp_path / "bad.key", "--out", tmp_path / "o", match="key")


@pytest.mark.parametrize(
    "bits,max_errors", [("1e400", "16"), ("256", "1e308"), ("true", "16"), ("-1", "0"), ("256", "1" + "0" * 5000)]
)
def test_out_of_range_numbers_in_user_tables(tmp_path, bits, max_errors) -> None:
    text = (
        f'{{"format": "advparams-users", "version": 1, "bits": {bits}, "max_errors": {max_errors}, '
        '"users": {}, "digest": "x"}'
    )
    (tmp_path / "t.json").write_text(text)
    with pytest.raises(UserTableError):
        UserTable.load(tmp_path / "t.json")


def test_passphrase_that_is_not_utf8(capsys, tmp_path, ckpt) -> None:
    (tmp_path / "pw").write_bytes(b"\xff\xfe caf\xe9\n")
    out, key = tmp_path / "L", tmp_path / "k.key"
    lock(capsys, ckpt, out, key, "--passphrase-file", tmp_path / "pw")
    pw = ("--passphrase-file", tmp_path / "pw")
    code, _, err = run(capsys, "unlock", out, "--key", key, *pw, "--out", tmp_path / "u")
    assert code == 0, err
    (tmp_path / "pw2").write_bytes(b"\xff\xfe cafe\n")
    one_error(capsys, "key-info", key, "--passphrase-file", tmp_path / "pw2", match="wrong passphrase")
    os.environb[b"ADVPARAMS_PASSPHRASE"] = b"\xff\xfe caf\xe9"
    try:
        code, _, err = run(capsys, "key-info", key)
    finally:
        del os.environb[b"ADVPARAMS_PASSPHRASE"]
    assert code == 0, err


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02K\x01K\x02a.",  # append to an int
        b"\x80\x02}]]s.",  # a list as a dict key
        b"\x80\x02)K\x01K\x02s.",  # setitem on a tuple
        b"\x80\x02(K\x01d.",  # odd number of dict items
        b"\x80\x02I" + b"9" * 5000 + b"\n.",  # an integer of 5000 digits
        b"\x80\x02cnumpy\ndtype\nq\x00X\x04\x00\x00\x00O8xyq\x01\x85R.",  # a dtype numpy refuses
    ],
)
def test_malformed_cifar_pickles(tmp_path, data) -> None:
    from advparams.data.cifar10 import read_python_batch

    (tmp_path / "data_batch_1").write_bytes(data)
    with pytest.raises(DataError):
        read_python_batch(tmp_path / "data_batch_1")


@pytest.mark.parametrize(
    "edit,match",
    [
        ({"seeds": [True]}, "seeds"),
        ({"name": ["x"]}, "name must be a string"),
        ({"seeds": [0, 1.5]}, "seeds"),
        ({"null_models": True}, "null_models"),
        ({"stealth": "yes"}, "stealth"),
        ({"schemes": [{"name": ["advparams"]}]}, "must be a string"),
        ({"schemes": [{"name": "advparams", "options": {"max_params": [1]}}]}, "max_params must be an integer"),
        ({"checkpoints": {"a": "x"}}, "checkpoints"),
    ],
)
def test_wrong_config_types(capsys, tmp_path, edit, match) -> None:
    import yaml

    raw = yaml.safe_load(CONFIG.read_text()) | edit
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "c.yaml")
    one_error(capsys, "evaluate-protection", "--config", tmp_path / "c.yaml", "--no-plots")


def test_any_unexpected_exception_is_one_line_and_debug_shows_the_traceback(capsys, monkeypatch, ckpt) -> None:
    import advparams.usecases.models as cli  # where `evaluate` loads the checkpoint

    def boom(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli, "load_checkpoint", boom)
    one_error(capsys, "evaluate", ckpt, match="unexpected ZeroDivisionError: boom")
    code, _, err = run(capsys, "evaluate", ckpt, "--debug")
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("advparams: error:")

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(cli, "load_checkpoint", oom)
    one_error(capsys, "evaluate", ckpt, match="out of memory")


# ----------------------------------------------------------------------------- 4. writes where they should not


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "..", ".hidden", "x" * 65, "a b"])
def test_config_name_must_be_a_safe_folder_name(tmp_path, name) -> None:
    import yaml

    raw = yaml.safe_load(CONFIG.read_text()) | {"name": name}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="name"):
        load_config(tmp_path / "c.yaml")


def test_force_never_deletes_a_folder_that_is_not_a_run(capsys, tmp_path) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    one_error(
        capsys,
        "evaluate-protection",
        "--config",
        "configs/fashion-mnist.yaml",
        "--out",
        precious,
        "--force",
        "--no-plots",
        match="never replaced",
    )
    assert (precious / "chapter1.tex").read_text() == "years of work"


def test_force_replaces_only_what_the_same_command_made(capsys, tmp_path, ckpt) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    (tmp_path / "notes.key").write_text("not a key")
    notes = tmp_path / "notes.key"
    one_error(capsys, "lock", ckpt, "--out", other, "--key", tmp_path / "k.key", "--force", match="a folder made by")
    one_error(capsys, "lock", ckpt, "--out", tmp_path / "L", "--key", notes, "--force", match="not the key of")
    one_error(capsys, "unlock", ckpt, "--key", notes, "--out", other, "--force", match="not a folder made")
    assert (other / "notes.txt").read_text() == "keep" and (tmp_path / "notes.key").read_text() == "not a key"
    # a trained checkpoint is not a locked one: lock --force does not replace it
    save_checkpoint(build_model("lenet", ARGS, seed=1), tmp_path / "t", architecture="lenet", arguments=ARGS)
    one_error(
        capsys,
        "lock",
        ckpt,
        "--out",
        tmp_path / "t",
        "--key",
        tmp_path / "k3.key",
        "--force",
        match="not a folder made",
    )


def test_output_paths_are_resolved_before_checks(capsys, tmp_path, ckpt) -> None:
    (tmp_path / "sub").mkdir()
    one_error(
        capsys, "lock", ckpt, "--out", tmp_path / "L", "--key", tmp_path / "sub" / ".." / "L", match="must differ"
    )


# ----------------------------------------------------------------------------- 5. integrity and secrecy


def test_user_table_with_a_duplicated_json_key(tmp_path) -> None:
    t = UserTable()
    t.register("alice")
    t.register("bob")
    text = t.to_bytes().decode()
    fp_alice = json.loads(text)["users"]["alice"]
    forged = text.replace('"bob": "', f'"bob": "{fp_alice}", "bob": "', 1)
    (tmp_path / "t.json").write_text(forged)
    with pytest.raises(UserTableError, match="appears twice"):
        UserTable.load(tmp_path / "t.json")


def test_user_table_with_identical_fingerprints(tmp_path) -> None:
    from advparams.watermarks.users import table_digest

    t = UserTable()
    t.register("alice")
    body = json.loads(t.to_bytes())
    body["users"]["mallory"] = body["users"]["alice"]
    body["digest"] = table_digest(body)
    (tmp_path / "t.json").write_text(json.dumps(body))
    with pytest.raises(UserTableError, match="too close"):
        UserTable.load(tmp_path / "t.json")


def test_reproducible_secret_warns_and_marks_the_key(capsys, caplog, tmp_path, ckpt) -> None:
    with caplog.at_level(logging.WARNING):
        lock(capsys, ckpt, tmp_path / "L", tmp_path / "k.key", "--set", "reproducible=true")
    assert any("can unlock" in r.getMessage() for r in caplog.records)
    assert "can unlock" in load_key(tmp_path / "k.key").insecure
    code, out, _ = run(capsys, "key-info", tmp_path / "k.key")
    assert code == 0 and "INSECURE" in out
    code, out, _ = run(capsys, "key-info", tmp_path / "k.key", "--json")
    assert json.loads(out)["insecure"]
    lock(capsys, ckpt, tmp_path / "L2", tmp_path / "k2.key")
    assert load_key(tmp_path / "k2.key").insecure == ""


def test_shipped_configs_say_why_they_use_reproducible_secrets() -> None:
    for p in CONFIG.parent.glob("*.yaml"):
        text = p.read_text()
        if "reproducible: true" in text:
            assert "Why `reproducible: true`" in text and "Never ship" in text, p


def test_every_library_error_is_an_advparams_error_and_reaches_the_user_as_one_line(capsys, ckpt) -> None:
    import inspect

    import advparams.errors as errors

    declared = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert CheckpointError in declared and all(issubclass(c, AdvParamsError) for c in declared), declared
    # the CLI's one-line handler catches what the library raises: a truncated checkpoint
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)
    one_error(capsys, "evaluate", ckpt, match="truncated or corrupt")


def test_user_table_with_too_many_users_is_refused_before_the_quadratic_check(tmp_path) -> None:
    from advparams.watermarks.users import MAX_USERS, table_digest

    users = {f"u{i}": os.urandom(32).hex() for i in range(MAX_USERS + 1)}
    body = {"format": "advparams-users", "version": 1, "bits": 256, "max_errors": 16, "users": users}
    body["digest"] = table_digest(body)
    (tmp_path / "t.json").write_text(json.dumps(body))
    with pytest.raises(UserTableError, match=f"at most {MAX_USERS}"):
        UserTable.load(tmp_path / "t.json")
