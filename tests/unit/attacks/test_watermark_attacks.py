"""The attacks on watermarks, on the tiny task: what each one does, checked directly."""

import pytest
import torch

from advparams.attacks import ATTACKS, anomaly_index
from advparams.attacks.querymod import AutoEncoder, jpeg, reconstruction_error
from advparams.metrics import accuracy
from advparams.testing import state_equal
from advparams.watermarks import WATERMARKS


@pytest.fixture(scope="module")
def marked(trained):
    model, data = trained
    res = WATERMARKS.build("zhang-content", {"num_keys": 20, "epochs": 5, "lr": 3e-3, "batch_size": 32}).embed(
        model, data
    )
    return res, data


def test_query_filter_alters_outliers_not_clean_queries(marked) -> None:
    res, data = marked
    out = ATTACKS.build("query-modify", {"epochs": 10, "data_fraction": 0.5}).run(res.model, data)
    flt = out.model
    x, _ = data.tensors()
    noise = torch.randn(50, *x.shape[1:]) * 3
    assert float(flt.flagged(x).float().mean()) <= 0.1  # about 1 - quantile of clean queries
    assert float(flt.flagged(noise).float().mean()) >= 0.9  # far from anything seen
    # On clean data the filtered model answers (nearly) as the model does.
    assert accuracy(flt, data) >= accuracy(res.model, data) - 0.1
    everything = ATTACKS.build("query-modify", {"epochs": 1, "detect": False, "mode": "jpeg"}).run(res.model, data)
    assert bool(everything.model.flagged(x[:5]).all())


def test_jpeg_round_trip_is_close_and_lossy() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=gen)
    mean, std = torch.zeros(1, 1, 1), torch.ones(1, 1, 1)
    y = jpeg(x, mean, std, quality=50)
    assert y.shape == x.shape and not torch.equal(y, x)
    assert float((y - x).abs().mean()) < 0.25
    smooth = torch.full((1, 1, 16, 16), 0.5)
    assert float((jpeg(smooth, mean, std, 90) - smooth).abs().max()) <= 2 / 255


def test_reconstruction_error_is_per_sample() -> None:
    ae = AutoEncoder(1)
    x = torch.randn(3, 1, 16, 16)
    err = reconstruction_error(ae, x)
    assert err.shape == (3,) and bool((err >= 0).all())
    assert AutoEncoder(3)(torch.randn(2, 3, 30, 30)).shape == (2, 3, 30, 30)  # sizes not divisible by 4


def test_overwrite_plants_the_attackers_watermark(marked) -> None:
    res, data = marked
    out = ATTACKS.build("overwrite", {"num_keys": 10, "epochs": 15, "data_fraction": 0.5, "lr": 3e-3}).run(
        res.model, data
    )
    assert out.info["attacker_watermark"] >= 0.8
    assert not state_equal(out.model, res.model)


def test_overwrite_names_a_registered_watermark() -> None:
    with pytest.raises(Exception, match="unknown watermark"):
        ATTACKS.build("overwrite", {"watermark": "nope"})


def test_anomaly_index_points_at_the_small_outlier() -> None:
    norms = torch.tensor([5.0, 5.2, 4.9, 5.1, 1.0, 5.0])
    idx = anomaly_index(norms)
    assert int(idx.argmax()) == 4 and float(idx[4]) > 2
    assert float(anomaly_index(torch.tensor([1.0, 1.2, 0.8, 1.1, 0.9])).max()) < 2


def test_gan_removal_reports_its_phases_and_changes_the_model(marked) -> None:
    res, data = marked
    out = ATTACKS.build("gan-removal", {"steps": 30, "epochs": 2, "data_fraction": 0.5}).run(res.model, data)
    info = out.info
    assert len(info["trigger_norms"]) == 10 == len(info["trigger_success"])
    assert 0 <= info["detected_class"] < 10
    assert info["detected"] == (info["anomaly_index"] > 2)
    assert not state_equal(out.model, res.model)
    assert accuracy(out.model, data) >= 0.5  # unlearning keeps the task
