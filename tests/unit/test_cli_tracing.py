"""Traceable keys from the CLI: roster, one key per user, unlock, trace; and the refusals."""

import json

import pytest

from advparams.checkpoint import load_checkpoint
from advparams.cli import main
from advparams.fingerprint import model_fingerprint
from advparams.testing import state_equal
from tests.unit.cli_helpers import one_line_error, run


@pytest.fixture(scope="module")
def owner(tmp_path_factory):
    d = tmp_path_factory.mktemp("tracing")
    args = ["--dataset", "synthetic", "--device", "cpu", "--json"]
    assert main(["train", "--model", "lenet", "--epochs", "2", "--out", str(d / "model"), *args]) == 0
    lock = [
        "lock",
        str(d / "model"),
        "--scheme",
        "hardened",
        "--set",
        "dither=23",
        "--out",
        str(d / "locked"),
        "--key",
        str(d / "owner.key"),
    ]
    assert main([*lock, "--device", "cpu", "--json", "--allow-partial"]) == 0
    return d


def test_roster_issue_unlock_and_trace(capsys, owner) -> None:
    d = owner
    users = [f"user{i:02d}" for i in range(20)]
    code, out, _ = run(
        capsys, "keys", "users", "create", d / "users.json", *users[:10], "--set", "positions=2048", "--json"
    )
    assert code == 0 and json.loads(out)["users"] == users[:10]
    code, out, _ = run(capsys, "keys", "users", "add", d / "users.json", *users[10:], "--json")
    assert code == 0 and len(json.loads(out)["users"]) == 20
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "users.json"]
    code, out, _ = run(capsys, *issue, "--user", "user07", "--out", d / "user07.key", "--json")
    assert code == 0 and json.loads(out)["user"] == "user07"
    text = (d / "user07.key").read_bytes()
    assert b"secret" not in text.split(b"}")[0]  # no shuffle secret in a user's key
    code, out, _ = run(capsys, "unlock", d / "locked", "--key", d / "user07.key", "--out", d / "copy07", "--json")
    assert code == 0 and json.loads(out)["user"] == "user07"
    copy07 = load_checkpoint(d / "copy07").model
    assert model_fingerprint(copy07) == json.loads(out)["fingerprint"]
    # the plain output says whose copy it is, not "the original"
    code, out, _ = run(capsys, "unlock", d / "locked", "--key", d / "user07.key", "--out", d / "copy07b")
    assert code == 0 and "weights equal user07's copy" in out and "the original" not in out
    assert not state_equal(copy07, load_checkpoint(d / "model").model)
    trace = ["trace", "--key", d / "owner.key", "--locked", d / "locked", "--users", d / "users.json", "--json"]
    code, out, _ = run(capsys, *trace[:1], d / "copy07", *trace[1:])
    s = json.loads(out)
    assert code == 0 and s["accused"] == ["user07"] and s["top"][0]["user"] == "user07"
    # docs/cli.md's conventions: the model read is "checkpoint", the key read "key"
    assert s["checkpoint"] == str(d / "copy07") and s["key"] == str(d / "owner.key") and "suspect" not in s
    # the original names nobody: exit 3
    code, out, _ = run(capsys, *trace[:1], d / "model", *trace[1:])
    assert code == 3 and json.loads(out)["accused"] == []
    # the owner key still restores the original
    assert run(capsys, "unlock", d / "locked", "--key", d / "owner.key", "--out", d / "orig")[0] == 0
    assert state_equal(load_checkpoint(d / "orig").model, load_checkpoint(d / "model").model)


def test_a_user_key_sealed_with_its_own_passphrase(capsys, owner, monkeypatch) -> None:
    d = owner
    monkeypatch.setenv("ADVPARAMS_PASSPHRASE", "the owner's")  # never used to seal a user's key
    assert run(capsys, "keys", "users", "create", d / "sealed.json", "carol", "dave", "--set", "positions=1024")[0] == 0
    (d / "carol.pass").write_bytes(b"carol's own\n")
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "sealed.json"]
    code, out, _ = run(capsys, *issue, "--user", "carol", "--out", d / "carol.key",
                       "--user-passphrase-file", d / "carol.pass", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["sealed"] is True
    assert b"carol" not in (d / "carol.key").read_bytes()  # the key's content is sealed
    plain = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "sealed.json"]
    assert run(capsys, *plain, "--user", "carol", "--out", d / "carol-plain.key")[0] == 0
    # the user unlocks with her passphrase into the same copy as the unsealed key's
    monkeypatch.delenv("ADVPARAMS_PASSPHRASE")
    code, _, err = run(capsys, "unlock", d / "locked", "--key", d / "carol.key", "--out", d / "carol-copy")
    one_line_error(code, err, "sealed")
    assert not (d / "carol-copy").exists()
    (d / "wrong.pass").write_bytes(b"the owner's\n")
    code, _, err = run(capsys, "unlock", d / "locked", "--key", d / "carol.key", "--out", d / "carol-copy",
                       "--passphrase-file", d / "wrong.pass")  # fmt: skip
    assert code != 0 and len(err.strip().splitlines()) == 1 and not (d / "carol-copy").exists()
    unlock = ["unlock", d / "locked", "--key"]
    assert (
        run(capsys, *unlock, d / "carol.key", "--out", d / "carol-copy", "--passphrase-file", d / "carol.pass")[0] == 0
    )
    assert run(capsys, *unlock, d / "carol-plain.key", "--out", d / "carol-copy2")[0] == 0
    assert state_equal(load_checkpoint(d / "carol-copy").model, load_checkpoint(d / "carol-copy2").model)
    # --seal without a passphrase file and no terminal: one line, nothing written
    code, _, err = run(capsys, *issue, "--user", "dave", "--out", d / "dave.key", "--seal")
    one_line_error(code, err, "passphrase")
    assert not (d / "dave.key").exists()


def test_refusals_are_one_line(capsys, owner) -> None:
    d = owner
    assert run(capsys, "keys", "users", "create", d / "r.json", "alice")[0] == 0
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "r.json"]
    code, _, err = run(capsys, *issue, "--user", "mallory", "--out", d / "m.key")
    one_line_error(code, err, "not in the roster")
    assert not (d / "m.key").exists()
    code, _, err = run(capsys, "keys", "users", "add", d / "r.json", "alice")
    one_line_error(code, err, "already in the roster")
    code, _, err = run(capsys, "keys", "users", "create", d / "r.json", "bob")
    assert code == 1 and "exists" in err
    edited = d / "r.json"
    edited.write_text(edited.read_text().replace('"alice"', '"alicf"'))
    code, _, err = run(capsys, *issue, "--user", "alice", "--out", d / "a.key")
    one_line_error(code, err, "digest")
    # an AdvParams (sparse) owner key cannot hide the marks
    assert main(["lock", str(d / "model"), "--out", str(d / "sparse"), "--key", str(d / "sparse.key"),
                 "--device", "cpu", "--allow-partial"]) == 0  # fmt: skip
    capsys.readouterr()
    assert run(capsys, "keys", "users", "create", d / "s.json", "alice")[0] == 0
    code, _, err = run(capsys, "keys", "issue", d / "sparse", "--key", d / "sparse.key", "--users", d / "s.json",
                       "--user", "alice", "--out", d / "s.key")  # fmt: skip
    one_line_error(code, err, "hardened")


def test_black_box_tracing_from_the_command_line(capsys, owner) -> None:
    d = owner
    users = [f"u{i:02d}" for i in range(12)]
    assert run(capsys, "keys", "users", "create", d / "bb.json", *users)[0] == 0
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "bb.json"]
    assert run(capsys, *issue, "--user", "u03", "--out", d / "u03.key")[0] == 0
    assert run(capsys, "unlock", d / "locked", "--key", d / "u03.key", "--out", d / "copy03")[0] == 0
    make = ["keys", "queries", d / "locked", "--key", d / "owner.key", "--users", d / "bb.json",
            "--out", d / "q.safetensors", "--pool", "300", "--json"]  # fmt: skip
    code, out, _ = run(capsys, *make, "--set", "queries=1024")
    assert code == 0 and json.loads(out)["queries"] == 1024
    code, _, err = run(capsys, *make)  # never over an existing file without --force
    one_line_error(code, err, "exists")
    trace = ["--key", d / "owner.key", "--locked", d / "locked", "--users", d / "bb.json", "--queries",
             d / "q.safetensors", "--queries-only", "--json"]  # fmt: skip
    code, out, _ = run(capsys, "trace", d / "copy03", *trace)
    s = json.loads(out)
    assert code == 0 and s["accused"] == ["u03"] and s["mode"] == "black-box" and s["queries"] == 1024
    # the same from a file of answers, as an API would give them
    from advparams.tracing import answer_queries, load_queries

    labels = answer_queries(load_checkpoint(d / "copy03").model, load_queries(d / "q.safetensors").inputs)
    (d / "answers.json").write_text(json.dumps(labels.tolist()))
    code, out, _ = run(capsys, "trace", d / "answers.json", *trace)
    assert code == 0 and json.loads(out)["accused"] == ["u03"]
    (d / "api-log").mkdir()
    (d / "api-log" / "answers.json").write_text(json.dumps({"answers": labels.tolist()}))
    code, out, _ = run(capsys, "trace", d / "api-log", *trace)  # a folder of answers
    assert code == 0 and json.loads(out)["accused"] == ["u03"]
    code, out, _ = run(capsys, "trace", d / "model", *trace)
    assert code == 3 and json.loads(out)["accused"] == []
    # refusals, one line each
    (d / "short.json").write_text(json.dumps(labels.tolist()[:5]))
    code, _, err = run(capsys, "trace", d / "short.json", *trace[:-1])
    one_line_error(code, err, "one per query")
    code, _, err = run(capsys, "trace", d / "copy03", *trace[:-2])
    one_line_error(code, err, "--queries-only")
    code, _, err = run(capsys, "trace", d / "copy03", *trace[:6], "--queries-only")
    one_line_error(code, err, "--queries FILE")
    (d / "q-edit.safetensors").write_bytes((d / "q.safetensors").read_bytes()[:-3] + b"xyz")
    code, _, err = run(capsys, "trace", d / "copy03", *trace[:7], d / "q-edit.safetensors", "--queries-only")
    one_line_error(code, err, "digest")


def test_a_hardened_lock_without_dither_is_refused(capsys, owner) -> None:
    d = owner
    lock = ["lock", str(d / "model"), "--scheme", "hardened", "--out", str(d / "plain"), "--key", str(d / "plain.key")]
    assert main([*lock, "--device", "cpu", "--allow-partial"]) == 0
    capsys.readouterr()
    assert run(capsys, "keys", "users", "create", d / "p.json", "alice")[0] == 0
    code, _, err = run(capsys, "keys", "issue", d / "plain", "--key", d / "plain.key", "--users", d / "p.json",
                       "--user", "alice", "--out", d / "p.key")  # fmt: skip
    one_line_error(code, err, "dither=23")
    assert not (d / "p.key").exists()


def test_user_mistakes_are_one_line_refusals_naming_the_value(capsys, owner) -> None:
    """Each of these was "unexpected ... (a bug)" or silently adjusted."""
    import dataclasses

    from advparams.tracing import load_queries, save_queries

    d = owner
    assert run(capsys, "keys", "users", "create", d / "um.json", "a", "b", "--set", "positions=512")[0] == 0
    trace = ["trace", d / "model", "--key", d / "owner.key", "--locked", d / "locked", "--users", d / "um.json"]
    for rate in ("0", "1", "nan", "-1"):
        code, _, err = run(capsys, *trace, "--rate", rate)
        one_line_error(code, err, "--rate is the chance of accusing an innocent user: in (0, 1)")
    # more marked positions than the model has, and an include that matches nothing: refused at issue
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--user", "a", "--out", d / "um.key"]
    assert run(capsys, "keys", "users", "create", d / "big.json", "a", "--set", "positions=1000000")[0] == 0
    code, _, err = run(capsys, *issue, "--users", d / "big.json")
    one_line_error(code, err, "the mark asks for 1000000 positions but this model has")
    assert run(capsys, "keys", "users", "create", d / "none.json", "a", "--set", 'include=["nothing*"]')[0] == 0
    code, _, err = run(capsys, *issue, "--users", d / "none.json")
    one_line_error(code, err, "leave no weight tensor of this model to mark")
    assert not (d / "um.key").exists()
    # --pool and --limit are refused out of range, never adjusted
    make = ["keys", "queries", d / "locked", "--key", d / "owner.key", "--users", d / "um.json", "--out"]
    code, _, err = run(capsys, *make, d / "um-q.safetensors", "--pool", "-5")
    one_line_error(code, err, "--pool must be in [1, 2000]")
    assert run(capsys, *make, d / "um-q.safetensors", "--pool", "300", "--set", "queries=64")[0] == 0
    bb = [*trace, "--queries", d / "um-q.safetensors", "--queries-only"]
    code, _, err = run(capsys, *bb, "--limit", "0")
    one_line_error(code, err, "--limit must be at least 1, got 0")
    code, _, err = run(capsys, *bb, "--limit", "65")
    one_line_error(code, err, "the query limit must be an integer in [1, 64]")
    # queries the model cannot take (a consistent file of the wrong shape): refused before any work
    qs = load_queries(d / "um-q.safetensors")
    save_queries(dataclasses.replace(qs, inputs=qs.inputs[:, :, :8, :8].contiguous()), d / "um-small.safetensors")
    code, _, err = run(capsys, *trace, "--queries", d / "um-small.safetensors", "--queries-only")
    one_line_error(code, err, "the queries are (1, 8, 8) inputs, which this model cannot take")
