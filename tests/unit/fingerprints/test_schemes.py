"""Contract tests run for every registered fingerprint, and each scheme's own claims."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from advparams.attacks import ATTACKS
from advparams.errors import AdvParamsError
from advparams.fingerprints import FINGERPRINTS, IPGuard, boundary_loss, calibrate_on, similarity, verify
from advparams.fingerprints.base import Fingerprint
from advparams.registry import config_to_dict
from advparams.testing import state_equal

from .conftest import fast


@pytest.fixture(scope="module")
def extracted(trained):
    model, data = trained
    return {n: FINGERPRINTS.build(n, fast(n)).extract(model, data) for n in FINGERPRINTS.names()}


def test_config_round_trip(fp_name) -> None:
    scheme = FINGERPRINTS.build(fp_name, {})
    assert FINGERPRINTS.build(fp_name, config_to_dict(scheme.config)).config == scheme.config
    assert dataclasses.is_dataclass(scheme.config)


def test_extract_leaves_the_model_alone_and_repeats(fp_name, trained) -> None:
    model, data = trained
    before = copy.deepcopy(model.state_dict())
    a = FINGERPRINTS.build(fp_name, fast(fp_name)).extract(model, data)
    b = FINGERPRINTS.build(fp_name, fast(fp_name)).extract(model, data)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert (a.maps is None) == (b.maps is None) and (a.maps is None or torch.equal(a.maps, b.maps))
    assert a.scheme == fp_name and len(a) == a.inputs.shape[0]
    other = FINGERPRINTS.build(fp_name, {**fast(fp_name), "seed": 7}).extract(model, data)
    assert not torch.equal(other.inputs, a.inputs)


def test_the_owner_matches_itself_fully_and_strangers_less(fp_name, trained, extracted, independent) -> None:
    model, _ = trained
    fp = extracted[fp_name]
    assert similarity(model, fp) == pytest.approx(1.0)
    assert similarity(copy.deepcopy(model), fp) == pytest.approx(1.0)
    strangers = [similarity(m, fp) for m in independent]
    assert max(strangers) < 1.0 - 1e-3


def test_verify_at_a_threshold_from_null_models(fp_name, trained, extracted, independent) -> None:
    model, _ = trained
    fp = extracted[fp_name]
    nulls, held_out = independent[:-1], independent[-1]
    cal = calibrate_on(nulls, fp, fpr=0.05)
    v = verify(model, fp, cal)
    assert v.score == pytest.approx(1.0) and v.decision  # the owner's model verifies at fpr 0.05
    assert not verify(held_out, fp, cal).decision  # an independent model it was not calibrated on does not
    checks = [verify(m, fp, cal) for m in nulls]
    assert not any(n.decision for n in checks)  # the threshold is above every calibration score
    assert cal.threshold > max(cal.null_scores)
    assert v.p_value < min(n.p_value for n in checks)


def test_a_suspect_of_another_input_shape_is_one_clear_error(fp_name, extracted) -> None:
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
    with pytest.raises(AdvParamsError, match="does not take"):
        similarity(other, extracted[fp_name])


def test_a_fingerprint_of_another_scheme_is_refused(extracted, trained) -> None:
    model, _ = trained
    with pytest.raises(AdvParamsError, match="not a 'ipguard'"):
        FINGERPRINTS.build("ipguard", {}).score(model, extracted["infip"])


def test_fingerprint_fields_are_validated(extracted) -> None:
    fp = extracted["infip"]
    with pytest.raises(AdvParamsError, match="finite"):
        dataclasses.replace(fp, inputs=torch.full_like(fp.inputs, float("nan")))
    with pytest.raises(AdvParamsError, match="labels"):
        dataclasses.replace(fp, labels=torch.full_like(fp.labels, 10))
    assert fp.maps is not None
    with pytest.raises(AdvParamsError, match=r"\[0, 1\]"):
        dataclasses.replace(fp, maps=fp.maps * 3)


def test_ipguard_points_lie_near_the_owner_boundary(trained, extracted) -> None:
    model, _ = trained
    fp = extracted["ipguard"]
    with torch.no_grad():
        scores = model.eval()(fp.inputs)
    top2 = scores.topk(2, dim=1).values
    assert torch.equal(scores.argmax(1), fp.labels)  # the labels recorded are the owner's answers
    # IPGuard's objective drives the gap between the two top classes towards k.
    k = IPGuard.Config(**fast("ipguard")).k
    assert float((top2[:, 0] - top2[:, 1]).median()) < k + 3.0
    low, high = fp.box()
    assert bool((fp.inputs >= low - 1e-6).all()) and bool((fp.inputs <= high + 1e-6).all())


def test_boundary_loss_by_hand() -> None:
    g = torch.tensor([[1.0, 3.0, 0.0], [2.0, 2.0, 5.0]])
    i, j = torch.tensor([0, 0]), torch.tensor([1, 1])
    assert boundary_loss(g, i, j, k=1.0).tolist() == [0.0, 1.0 + 3.0]
    assert boundary_loss(g[:, :2], i, j, k=0.5).tolist() == [0.0, 0.5]  # two classes: no third term


def test_infip_boundary_selection_picks_small_margins(trained) -> None:
    model, data = trained
    fp = FINGERPRINTS.build("infip", {**fast("infip"), "selection": "boundary"}).extract(model, data)
    rnd = FINGERPRINTS.build("infip", fast("infip")).extract(model, data)

    def margin(f: Fingerprint) -> float:
        with torch.no_grad():
            t = model.eval()(f.inputs).topk(2, dim=1).values
        return float((t[:, 0] - t[:, 1]).mean())

    assert margin(fp) < margin(rnd)


def test_fine_tuned_copies_stay_closer_than_distilled_strangers(trained, extracted) -> None:
    """Fine-tuning keeps most of the owner's maps and boundary; a network distilled from
    scratch is a new network (the attacks the study runs, on the tiny model)."""
    model, data = trained
    tuned = ATTACKS.build("finetune", {"epochs": 1, "data_fraction": 0.2, "scratch": False}).run(model, data).model
    distilled = ATTACKS.build("distill", ATTACKS.get("distill").tiny).run(model, data).model
    assert not state_equal(tuned, model)
    for name, fp in extracted.items():
        assert similarity(tuned, fp) > similarity(distilled, fp), name


class _Counting(torch.nn.Module):
    """A wrapper that counts the inputs its model was run on."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.inputs = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs += int(x.shape[0])
        return self.model(x)


def test_a_suspect_of_another_shape_fails_after_one_input(fp_name, extracted) -> None:
    flat = _Counting(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10)))
    with pytest.raises(AdvParamsError, match="does not take"):
        similarity(flat, extracted[fp_name])
    assert flat.inputs == 1  # not a batch of probes


def test_check_takes_names_both_shapes(extracted) -> None:
    fp = extracted["ipguard"]
    fp.check_takes((1, 16, 16))
    fp.check_takes(None)
    with pytest.raises(AdvParamsError, match="probes are 1x16x16 inputs, but the suspect takes 3x32x32"):
        fp.check_takes((3, 32, 32), model="the suspect")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("infip", {"probes": 601, "pool": 700}, "probes=601 is more than the 600 images"),
        ("infip", {"probes": 8, "pool": 601, "selection": "boundary"}, "pool=601 is more than the 600 images"),
        ("ipguard", {"points": 70_000, "steps": 1}, "points=70000 is too many.*17920000 values"),
    ],
)
def test_extract_refuses_what_the_data_cannot_give_before_any_work(trained, name, options, message) -> None:
    """Before: 601 probes of 600 images were cut to 600 while the file recorded 601."""
    model, data = trained
    counting = _Counting(model)
    with pytest.raises(AdvParamsError, match=message):
        FINGERPRINTS.build(name, {**fast(name), **options}).extract(counting, data)
    assert counting.inputs == 0


def test_extract_records_the_probes_it_took(trained) -> None:
    model, data = trained
    fp = FINGERPRINTS.build("infip", {**fast("infip"), "probes": len(data), "pool": len(data)}).extract(model, data)
    assert len(fp) == fp.config["probes"] == len(data)


@pytest.mark.parametrize("name", FINGERPRINTS.names())
@pytest.mark.parametrize("seed", [-1, 2**63, 10**30, True])
def test_seeds_outside_what_a_generator_takes_are_refused(name, seed) -> None:
    with pytest.raises(AdvParamsError, match="seed"):
        FINGERPRINTS.build(name, {"seed": seed})


@pytest.mark.parametrize("fpr", [1e-300, 0.0, -0.1, 0.5, 1.0, float("nan"), float("inf"), 1e-13])
def test_calibration_refuses_a_rate_it_cannot_compute_before_scoring(extracted, fpr) -> None:
    """Before: 1e-300 reached the normal quantile of 1.0 (a StatisticsError, not an AdvParamsError)."""

    def nulls():  # type: ignore[no-untyped-def]
        raise AssertionError("a null model was scored")
        yield

    with pytest.raises(AdvParamsError, match=r"fpr must be a false-positive rate in \[1e-12, 0.5\)"):
        calibrate_on(nulls(), extracted["ipguard"], fpr=fpr)


def test_probe_limits() -> None:
    from advparams.fingerprints.base import MAX_PROBE_SIDE, MAX_PROBE_VALUES, MAX_PROBES, check_probe_shape

    check_probe_shape((MAX_PROBES, 1, 8, 8))
    check_probe_shape((1, 1, MAX_PROBE_SIDE, MAX_PROBE_SIDE))
    for shape, message in [
        ((MAX_PROBES + 1, 1, 2, 2), "1 to 100000 probes"),
        ((1, 1, MAX_PROBE_SIDE + 1, 2), r"sides must be in \[1, 1024\]"),
        ((1, 1, 8150, 8150), "sides"),
        ((1, 0, 4, 4), "channel"),
        ((17, 1, MAX_PROBE_SIDE, MAX_PROBE_SIDE), f"over the limit of {MAX_PROBE_VALUES}"),
        ((4, 1, 4), r"\[N, C, H, W\]"),
    ]:
        with pytest.raises(AdvParamsError, match=message):
            check_probe_shape(shape)
