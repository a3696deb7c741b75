"""Contract tests run for every registered watermark, on the tiny synthetic task."""

import copy

import pytest
import torch

from advparams.errors import AdvParamsError, KeyFileError
from advparams.fingerprint import model_fingerprint
from advparams.metrics import accuracy
from advparams.registry import config_to_dict
from advparams.testing import ConstantClassifier
from advparams.watermarks import WATERMARKS, calibrate_on, load_watermark_key, save_watermark_key, verify
from advparams.watermarks.keyfile import watermark_key_from_bytes, watermark_key_to_bytes
from tests.unit.watermarks.conftest import fast


def test_config_round_trip(wm_name) -> None:
    wm = WATERMARKS.build(wm_name, {})
    assert WATERMARKS.build(wm_name, config_to_dict(wm.config)).config == wm.config


def test_embed_leaves_input_and_is_deterministic(wm_name, trained) -> None:
    model, data = trained
    before = copy.deepcopy(model.state_dict())
    opts = {**fast(wm_name), "epochs": 1}
    a = WATERMARKS.build(wm_name, opts).embed(model, data)
    b = WATERMARKS.build(wm_name, opts).embed(model, data)
    c = WATERMARKS.build(wm_name, {**opts, "seed": 1}).embed(model, data)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert a.model is not model
    assert model_fingerprint(a.model) == model_fingerprint(b.model) == a.key.model_fingerprint
    assert torch.equal(a.key.images, b.key.images) and torch.equal(a.key.labels, b.key.labels)
    assert not torch.equal(a.key.images, c.key.images)
    assert len(a.key) == opts["num_keys"] and a.key.images.dtype == torch.uint8


def test_watermark_is_learnt_and_cheap(wm_name, trained, embedded) -> None:
    model, data = trained
    res = embedded[wm_name]
    assert res.key.score(res.model) >= 0.9
    assert accuracy(res.model, data) >= accuracy(model, data) - 0.05


# Frontier-stitching keys carry their true labels, which unrelated models of this easy
# task give too (97% of them): no threshold on 20 keys separates them, and calibration
# must say so rather than return one (docs/watermarks.md measures 100 keys on real data).
UNCALIBRATABLE = {"frontier-stitching"}


def test_threshold_from_null_models_separates(wm_name, embedded, null_models) -> None:
    res = embedded[wm_name]
    fpr = 1e-3
    if wm_name in UNCALIBRATABLE:
        with pytest.raises(AdvParamsError, match="use more key samples"):
            calibrate_on(null_models, res.key, fpr=fpr)
        return
    cal = calibrate_on(null_models, res.key, fpr=fpr)
    assert cal.threshold > max(cal.null_scores) and cal.fpr == fpr
    for null in null_models:
        assert not verify(null, res.key, cal).decision
    v = verify(res.model, res.key, cal)
    assert v.decision and v.p_value <= fpr and v.score == res.key.score(res.model)


def test_a_model_answering_one_class_does_not_verify(wm_name, embedded, null_models) -> None:
    # A constant model scores the share of keys labelled with its class: under the
    # threshold unless all keys share that label, and the label it answers is another.
    res = embedded[wm_name]
    if wm_name in UNCALIBRATABLE:
        pytest.skip("no threshold is reachable for this watermark on the tiny task (tested above)")
    cal = calibrate_on(null_models, res.key, fpr=1e-3)
    other = int((res.key.labels[0] + 1) % res.key.num_classes)
    assert not verify(ConstantClassifier(res.key.num_classes, other), res.key, cal).decision


def test_key_file_round_trip_and_tamper(wm_name, embedded, tmp_path) -> None:
    key = embedded[wm_name].key
    path = tmp_path / "wm.key"
    save_watermark_key(key, path)
    back = load_watermark_key(path)
    assert torch.equal(back.images, key.images) and torch.equal(back.labels, key.labels)
    assert (back.scheme, back.mean, back.std, back.num_classes) == (key.scheme, key.mean, key.std, key.num_classes)
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(Exception, match="exists"):
        save_watermark_key(key, path)
    data = bytearray(watermark_key_to_bytes(key))
    data[-1] ^= 1  # one bit of the last label
    with pytest.raises(KeyFileError, match="digest"):
        watermark_key_from_bytes(bytes(data))
    with pytest.raises(KeyFileError):
        watermark_key_from_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="does not exist"):
        load_watermark_key(tmp_path / "missing.key")


def test_only_image_datasets(wm_name, trained) -> None:
    model, data = trained
    with pytest.raises(AdvParamsError, match="ImageDataset"):
        WATERMARKS.build(wm_name, fast(wm_name)).embed(model, data.tensors())


def test_a_model_of_another_shape_is_one_clear_error(embedded) -> None:
    key = embedded["zhang-noise"].key
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(AdvParamsError, match="does not take"):
        key.score(wrong)


def test_tiny_options_build(wm_name) -> None:
    assert WATERMARKS.get(wm_name).tiny, "every watermark declares small options for the tests"
    WATERMARKS.build(wm_name, fast(wm_name))
