"""The harness on a tiny synthetic evaluation: rows, pairing, sharing, resuming."""

import json
import shutil

import pytest

from advparams.attacks import FineTune, FineTuneConfig
from advparams.checkpoint import load_checkpoint
from advparams.errors import OutputExistsError
from advparams.evaluation import RESULTS_FILE, config_from_mapping, evaluate_protection, read_rows
from advparams.keys import load_key
from advparams.metrics import accuracy


def by(rows, **want):
    return [r for r in rows if all(getattr(r, k) == v for k, v in want.items())]


def test_every_row_is_there_once(tiny_run, tiny_config) -> None:
    _, rows = tiny_run
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    for seed in (0, 1):
        assert len(by(rows, kind="clean", seed=seed)) == 1
        for s in ("advparams", "random", "hardened"):
            assert len(by(rows, kind="lock", seed=seed, scheme=s)) == 1
            assert len(by(rows, kind="stealth", seed=seed, scheme=s)) == 1
            # hardened's size is a share of every tensor, not a count: no budget sweep
            budgets = {1, 3} if s != "hardened" else set()
            assert {r.setting["budget"] for r in by(rows, kind="budget", seed=seed, scheme=s)} == budgets
            for a in tiny_config.attacks:
                got = [r.setting for r in by(rows, kind="attack", seed=seed, scheme=s, attack=a.name)]
                assert got == list(a.settings())
    assert {r.scheme for r in by(rows, kind="histogram")} == {"advparams", "random", "hardened"}
    assert {r.seed for r in by(rows, kind="histogram")} == {0}
    assert len(by(rows, kind="session")) == 1


def test_locks_are_exact_and_random_matches_the_count(tiny_run) -> None:
    _, rows = tiny_run
    for seed in (0, 1):
        clean = by(rows, kind="clean", seed=seed)[0].accuracy
        adv = by(rows, kind="lock", seed=seed, scheme="advparams")[0]
        rnd = by(rows, kind="lock", seed=seed, scheme="random")[0]
        for r in (adv, rnd):
            assert r.metrics["bit_exact"] is True and r.metrics["unlocked_accuracy"] == clean
        assert rnd.metrics["params_changed"] == adv.metrics["params_changed"]
        assert rnd.metrics["options"]["max_params"] == adv.metrics["params_changed"]
        assert adv.accuracy < clean - 0.3


def test_scratch_baseline_runs_once_per_setting_and_seed(tiny_run) -> None:
    _, rows = tiny_run
    for seed in (0, 1):
        for frac in (0.05, 0.2):
            scratch = by(rows, kind="baseline", seed=seed, scheme="scratch", attack="finetune")
            scratch = [r for r in scratch if r.setting == {"data_fraction": frac}]
            assert len(scratch) == 1 and scratch[0].metrics["made_with"] == "advparams"
            first = [
                r
                for r in by(rows, kind="attack", seed=seed, attack="finetune", scheme="advparams")
                if r.setting == {"data_fraction": frac}
            ][0]
            second = [
                r
                for r in by(rows, kind="attack", seed=seed, attack="finetune", scheme="random")
                if r.setting == {"data_fraction": frac}
            ][0]
            assert first.metrics["options"].get("scratch", True) is True
            assert second.metrics["options"]["scratch"] is False
            assert first.metrics["info"]["num_samples"] == second.metrics["info"]["num_samples"]


def test_shared_scratch_is_the_scratch_of_every_scheme(tiny_run, tiny_config) -> None:
    # The shared baseline is only fair if the scratch model does not depend on the
    # locked model it was made beside: train it again beside the *random* lock.
    out, rows = tiny_run
    from advparams.data import load_dataset

    train = load_dataset("synthetic", "train")
    test = load_dataset("synthetic", "test").subset(__import__("torch").arange(200))
    locked = load_checkpoint(out / "locks" / "random-seed0").model
    cfg = FineTuneConfig(epochs=1, data_fraction=0.05, seed=0)
    res = FineTune(cfg).run(locked, train)
    shared = [r for r in by(rows, kind="baseline", seed=0, attack="finetune") if r.setting == {"data_fraction": 0.05}]
    assert accuracy(res.baselines["scratch"], test) == shared[0].accuracy


@pytest.mark.parametrize("scheme", ["advparams", "hardened"])
def test_key_leak_rows_span_locked_to_clean(tiny_run, scheme) -> None:
    # For the hardened lock each moved value is one change: leaking all of them restores
    # the original, half of them half.
    _, rows = tiny_run
    for seed in (0, 1):
        clean = by(rows, kind="clean", seed=seed)[0].accuracy
        lock = by(rows, kind="lock", seed=seed, scheme=scheme)[0]
        leak = {r.setting["fraction"]: r for r in by(rows, kind="attack", seed=seed, scheme=scheme, attack="key-leak")}
        assert leak[0.0].accuracy == lock.accuracy
        assert leak[1.0].accuracy == clean
        assert leak[0.5].metrics["info"]["leaked"] == round(0.5 * lock.metrics["params_changed"])


def test_detection_scores_are_recorded(tiny_run) -> None:
    # precision = hits / suspects and recall = hits / values changed: one whole number of hits.
    _, rows = tiny_run
    checked = 0
    for r in by(rows, kind="attack", attack="retrace"):
        assert r.metrics["suspects"] == 20
        changed = by(rows, kind="lock", seed=r.seed, scheme=r.scheme)[0].metrics["params_changed"]
        hits = r.metrics["precision"] * 20
        assert hits == pytest.approx(round(hits), abs=1e-9)
        assert r.metrics["recall"] == pytest.approx(round(hits) / changed, abs=1e-9)
        assert "suspects" not in r.metrics["info"]  # bulky lists stay out of the rows
        checked += 1
    assert checked >= 2


def test_saved_locks_and_keys_fit(tiny_run) -> None:
    out, _ = tiny_run
    for s in ("advparams", "random", "hardened"):
        model = load_checkpoint(out / "locks" / f"{s}-seed1").model
        key = load_key(out / "locks" / f"{s}-seed1.key")
        from advparams.keys import unlock

        original = load_checkpoint(out / "models" / "seed1").model
        restored = unlock(model, key)
        # The lock row holds the key's size (what the docs quote), not its content.
        (row,) = by(tiny_run[1], kind="lock", seed=1, scheme=s)
        assert row.metrics["key_bytes"] == (out / "locks" / f"{s}-seed1.key").stat().st_size
        assert row.metrics["key_values"] == sum(int(e.indices.numel()) for e in key.entries)
        assert row.metrics["key_secret"] is bool(key.shuffles) is (s == "hardened")
        # and every setting the lock ran with, defaults included
        from advparams.registry import config_to_dict
        from advparams.schemes import SCHEMES

        built = SCHEMES.build(s, row.metrics["options"]).config
        assert row.metrics["config"] == config_to_dict(built) and len(row.metrics["config"]) > len(
            row.metrics["options"]
        )
        assert all(
            (a == b).all() for a, b in zip(restored.state_dict().values(), original.state_dict().values(), strict=True)
        )


def test_resume_skips_done_rows_and_redoes_lost_ones(tiny_run, tiny_config, tmp_path) -> None:
    out, rows = tiny_run
    copy_dir = tmp_path / "run"
    shutil.copytree(out, copy_dir)
    # Same config again: nothing but a session row is added.
    again = evaluate_protection(tiny_config, copy_dir, device="cpu")
    assert len(again) == len(rows) + 1
    # A crash: the last 5 rows lost and a line cut in half.
    path = copy_dir / RESULTS_FILE
    lines = path.read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["kind"] != "session"]
    lost = kept[-5:]
    path.write_text("\n".join(kept[:-5]) + "\n" + lost[0][:20])
    redone = evaluate_protection(tiny_config, copy_dir, device="cpu")
    final = {r.key: r for r in read_rows(path)}
    for line in lost:
        row = json.loads(line)
        key = (row["kind"], row["seed"], row["scheme"], row["attack"], json.dumps(row["setting"], sort_keys=True))
        assert key in final
        # Deterministic: the redone row measures the same accuracy.
        assert final[key].accuracy == row["accuracy"]
    assert len([r for r in redone if r.kind != "session"]) == len(kept)


def test_a_different_config_needs_force(tiny_run, tiny_config, tmp_path) -> None:
    out, _ = tiny_run
    copy_dir = tmp_path / "run"
    shutil.copytree(out, copy_dir)
    other = config_from_mapping({**tiny_config.to_dict(), "seeds": [0], "attacks": [], "budgets": []})
    with pytest.raises(OutputExistsError, match="different configuration"):
        evaluate_protection(other, copy_dir, device="cpu")
    assert (copy_dir / RESULTS_FILE).exists()  # nothing lost
    rows = evaluate_protection(other, copy_dir, device="cpu", force=True)
    assert {r.seed for r in rows if r.kind == "lock"} == {0}


def test_a_foreign_folder_needs_force(tiny_config, tmp_path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not an evaluation run"):
        evaluate_protection(tiny_config, tmp_path, device="cpu")
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_rows_hold_no_key_material(tiny_run) -> None:
    # Positions plus original values are the key; neither may appear in the rows.
    out, rows = tiny_run
    key = load_key(out / "locks" / "advparams-seed0.key")
    originals = {float(v) for e in key.entries for v in e.original.tolist()}
    text = (out / RESULTS_FILE).read_text()
    for r in rows:
        if r.kind == "stealth":
            # Per-value z-scores would single out the changed values: only aggregates stay.
            assert "per_value" not in set(r.metrics)  # nor may it be: the stealth kind does not declare it
            assert all(not isinstance(v, list) for k, v in r.metrics.items() if k != "per_tensor")
            for t in r.metrics["per_tensor"]:
                assert set(t) == {"name", "numel", "changed", "ks_statistic", "p_value"}
        if r.kind == "histogram":
            for layer in r.metrics.values():
                assert set(layer) == {"range", "original", "locked", "changed"}
    # The histogram ranges are the extremes of each locked tensor, public to whoever holds
    # that locked model; a shuffled model holds the original extremes, and an AdvParams
    # original may be one of them. Any other original value must not appear.
    public = set()
    for s in ("advparams", "random", "hardened"):
        for p in load_checkpoint(out / "locks" / f"{s}-seed0").model.parameters():
            public |= {float(p.detach().min()), float(p.detach().max())}
    leaked = [v for v in originals - public if repr(v) in text]
    assert leaked == [] and len(originals - public) >= len(originals) - 2


def test_retrace_scratch_baseline_is_shared_and_reported(tiny_run, tiny_config) -> None:
    from advparams.attacks import ATTACKS
    from advparams.data import load_dataset
    from advparams.reports import build_report

    out, rows = tiny_run
    train = load_dataset("synthetic", "train")
    test = load_dataset("synthetic", "test").subset(__import__("torch").arange(200))
    for seed in (0, 1):
        (base,) = by(rows, kind="baseline", seed=seed, attack="retrace")
        assert base.scheme == "scratch" and base.metrics["made_with"] == "advparams"
        # The row's accuracy is the scratch model's: retrace it again with the row's options
        # beside the lock it was made with, and measure it by hand.
        locked = load_checkpoint(out / "locks" / f"advparams-seed{seed}").model
        res = ATTACKS.build("retrace", base.metrics["options"]).run(locked, train)
        assert accuracy(res.baselines["scratch"], test) == base.accuracy
    text = build_report(rows, tiny_config)
    assert "advantage (pp)" in text.split("retrace", 1)[1]


def test_hardened_rows_hold_no_secret(tiny_run) -> None:
    out, _ = tiny_run
    key = load_key(out / "locks" / "hardened-seed0.key")
    assert key.shuffles and len(key.secret) == 32
    text = (out / RESULTS_FILE).read_text()
    assert key.secret.hex() not in text and str(list(key.secret)) not in text
