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
    cal = calibrate_on(independent[:3], fp, fpr=0.05)
    v = verify(model, fp, cal)
    nulls = [verify(m, fp, cal) for m in independent[:3]]
    assert v.score == pytest.approx(1.0) and v.decision == (v.score >= v.threshold)
    assert all(not n.decision for n in nulls)  # the threshold is above every calibration score
    assert cal.threshold > max(cal.null_scores)
    assert v.p_value < min(n.p_value for n in nulls)
    # The tiny task's independent nets agree closely (their maps too), so a generous rate is
    # needed for the owner to clear the threshold there; on Fashion-MNIST see docs/fingerprints.md.
    assert verify(model, fp, calibrate_on(independent[:3], fp, fpr=0.3)).decision


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
