"""A key is never replaced by a command whose inputs include it, nor by another model's or
another user's key, even with ``--force``: an owner key is the only copy of its secret."""

from __future__ import annotations

import pytest

from advparams.cli import main
from advparams.errors import OutputExistsError
from advparams.keys import load_key, save_key
from tests.unit.cli_helpers import one_line_error, run


@pytest.fixture(scope="module")
def owner(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    common = ["--dataset", "synthetic", "--device", "cpu", "--json"]
    for name, seed in (("model", "0"), ("model2", "1")):
        argv = ["train", "--model", "lenet", "--epochs", "2", "--seed", seed, "--out", str(d / name)]
        assert main([*argv, *common]) == 0
    lock = ["lock", str(d / "model"), "--scheme", "hardened", "--set", "dither=23", "--set", "check_samples=0"]
    assert main([*lock, "--out", str(d / "locked"), "--key", str(d / "owner.key"), "--device", "cpu", "--json"]) == 0
    assert run_quiet(["keys", "users", "create", str(d / "roster.json"), "alice", "bob", "--set", "positions=512"])
    return d


def run_quiet(argv: list[str]) -> bool:
    return main([*argv, "--json"]) == 0


def test_keys_issue_never_writes_over_the_owner_key_it_reads(capsys, owner) -> None:
    d = owner
    before = (d / "owner.key").read_bytes()
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "roster.json", "--user", "alice"]
    code, _, err = run(capsys, *issue, "--out", d / "owner.key", "--force")
    one_line_error(code, err, "is one of this command's inputs")
    assert (d / "owner.key").read_bytes() == before
    # nor over the roster it reads
    roster = (d / "roster.json").read_bytes()
    code, _, err = run(capsys, *issue, "--out", d / "roster.json", "--force")
    one_line_error(code, err, "is one of this command's inputs")
    assert (d / "roster.json").read_bytes() == roster


def test_keys_issue_force_replaces_only_the_same_users_key_of_the_same_model(capsys, owner, tmp_path) -> None:
    d = owner
    issue = ["keys", "issue", d / "locked", "--key", d / "owner.key", "--users", d / "roster.json"]
    alice = tmp_path / "alice.key"
    assert run(capsys, *issue, "--user", "alice", "--out", alice)[0] == 0
    assert run(capsys, *issue, "--user", "alice", "--out", alice, "--force")[0] == 0  # issued again: fine
    before = alice.read_bytes()
    code, _, err = run(capsys, *issue, "--user", "bob", "--out", alice, "--force")
    one_line_error(code, err, "is not an unsealed key of user 'bob'")
    assert alice.read_bytes() == before
    # an owner key elsewhere (a copy, not an input) is never replaced by a user's key
    copy = tmp_path / "owner-copy.key"
    copy.write_bytes((d / "owner.key").read_bytes())
    code, _, err = run(capsys, *issue, "--user", "alice", "--out", copy, "--force")
    one_line_error(code, err, "is not an unsealed key of user 'alice'")
    assert copy.read_bytes() == (d / "owner.key").read_bytes()


def test_lock_force_never_replaces_another_models_key(capsys, owner, tmp_path) -> None:
    d = owner
    precious = tmp_path / "precious.key"
    precious.write_bytes((d / "owner.key").read_bytes())  # the only key of d/locked, say
    code, _, err = run(capsys, "lock", d / "model2", "--out", tmp_path / "L2", "--key", precious, "--force")
    one_line_error(code, err, "is not the key of the locked model being replaced")
    assert precious.read_bytes() == (d / "owner.key").read_bytes()
    assert not (tmp_path / "L2").exists()


def test_lock_force_replaces_a_pair_it_wrote_and_no_other_pairing(capsys, owner, tmp_path) -> None:
    d = owner
    opts = ["--scheme", "hardened", "--set", "check_samples=0", "--device", "cpu"]
    pair = ["--out", tmp_path / "L", "--key", tmp_path / "L.key"]
    assert run(capsys, "lock", d / "model2", *pair, *opts)[0] == 0
    first = (tmp_path / "L.key").read_bytes()
    assert run(capsys, "lock", d / "model2", *pair, *opts, "--force")[0] == 0  # the same pair, replaced together
    assert (tmp_path / "L.key").read_bytes() != first
    # another lock's folder with this key: the key does not belong to that folder
    assert run(capsys, "lock", d / "model2", "--out", tmp_path / "M", "--key", tmp_path / "M.key", *opts)[0] == 0
    kept = (tmp_path / "L.key").read_bytes()
    code, _, err = run(capsys, "lock", d / "model2", "--out", tmp_path / "M", "--key", tmp_path / "L.key", *opts,
                       "--force")  # fmt: skip
    one_line_error(code, err, "is not the key of the locked model being replaced")
    assert (tmp_path / "L.key").read_bytes() == kept


def test_save_key_force_never_replaces_an_owner_key(owner, tmp_path) -> None:
    d = owner
    owner_key = load_key(d / "owner.key")
    path = tmp_path / "k.key"
    path.write_bytes((d / "owner.key").read_bytes())
    with pytest.raises(OutputExistsError, match="an owner key is replaced only with its locked model"):
        save_key(owner_key, path, force=True)
    assert path.read_bytes() == (d / "owner.key").read_bytes()
