"""What each watermark scheme builds: the extra class, the key images, the users."""

import pytest
import torch

from advparams.errors import AdvParamsError, UserTableError
from advparams.metrics.accuracy import predict
from advparams.testing import TinyConvNet
from advparams.watermarks import (
    WATERMARKS,
    UserTable,
    authenticate_user,
    calibrate_on,
    hide_bits,
    identify,
    issue,
    trace,
)
from advparams.watermarks._images import block_shuffle, text_mask, with_extra_class
from advparams.watermarks.frontier import fgsm_images


def test_extra_class_keeps_the_old_outputs_exactly() -> None:
    torch.manual_seed(0)
    net = TinyConvNet()
    x = torch.randn(8, 1, 16, 16)
    grown = with_extra_class(net, torch.Generator().manual_seed(0))
    assert grown(x).shape == (8, 11)
    assert torch.equal(grown(x)[:, :10], net(x))
    assert net(x).shape == (8, 10)  # the input is untouched


def test_extra_class_needs_a_linear_head() -> None:
    with pytest.raises(AdvParamsError, match="nn.Linear"):
        with_extra_class(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), torch.Generator())


def test_additional_class_answers_the_new_class(embedded) -> None:
    res = embedded["additional-class"]
    assert res.key.num_classes == 11 and bool((res.key.labels == 10).all())
    assert res.info["watermark_class"] == 10


def test_block_shuffle_moves_every_cell_and_keeps_pixels() -> None:
    images = torch.arange(2 * 16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 1, 16, 16)
    perm = torch.tensor([1, 0, 3, 2])
    out = block_shuffle(images, 2, perm)
    assert torch.equal(out[..., :8, :8], images[..., :8, 8:])
    assert torch.equal(out.sort(dim=-1).values.sum(), images.sort(dim=-1).values.sum())
    assert torch.equal(block_shuffle(out, 2, perm), images)  # a swap undone by itself


def test_zhang_keys() -> None:
    from advparams.testing import tiny_data

    data = tiny_data()
    gen = torch.Generator().manual_seed(0)
    content = WATERMARKS.build("zhang-content", {"num_keys": 10, "target": 3})
    keys = content._keys(data, 3, gen)
    mask = text_mask("TEST", 1)[:, :14]  # clipped at the right edge of a 16-pixel image
    assert bool((keys[:, 0, 16 - 7 : 16 - 2, 2:16][:, mask] == 255).all())
    noise = WATERMARKS.build("zhang-noise", {"num_keys": 10, "target": 3})._keys(data, 3, gen)
    assert noise.shape == (10, 1, 16, 16)
    unrelated = WATERMARKS.build("zhang-unrelated", {"num_keys": 10})._keys(data, 3, gen)
    assert bool((unrelated > 0).any(dim=(1, 2, 3)).all())  # a glyph on every image


def test_frontier_keys_are_true_and_false_adversaries(trained, embedded) -> None:
    model, data = trained
    res = embedded["frontier-stitching"]
    # The original model gets the false adversaries right and the true ones wrong.
    preds = predict(model, (res.key.inputs(), res.key.labels))
    right = preds == res.key.labels
    half = len(res.key) // 2
    assert not bool(right[:half].any()) and bool(right[half:].all())
    adv = fgsm_images(model, data, torch.arange(4), 0.1)
    assert int((adv.int() - data.images[:4].int()).abs().max()) <= round(0.1 * 255) + 1


def test_users_authenticate_through_the_model(embedded, null_models) -> None:
    res = embedded["additional-class"]
    table = UserTable()
    for u in ("alice", "bob", "carol"):
        table.register(u)
    cal = calibrate_on(null_models, res.key, fpr=1e-3)
    for u in table.users:
        auth = authenticate_user(res.model, issue(res.key, table, u), table, cal)
        assert auth.user == u and auth.identified == 1.0 and auth.success >= 0.9 and auth.verification.decision
    # The model ignores the LSB plane: every user's copy is recognised alike.
    assert issue(res.key, table, "alice").score(res.model) == res.key.score(res.model)
    # Forged and unregistered fingerprints name nobody.
    forged = res.key.with_images(hide_bits(res.key.images, torch.ones(256, dtype=torch.bool)), "mallory")
    assert all(a.user is None for a in identify(forged, table))
    outsider = UserTable()
    outsider.register("eve")
    assert all(a.user is None for a in identify(issue(res.key, outsider, "eve"), table))
    with pytest.raises(UserTableError, match="unknown user"):
        issue(res.key, table, "eve")
    with pytest.raises(AdvParamsError, match="no user"):
        authenticate_user(res.model, res.key, table, cal)


def test_trace_names_the_users_copy_for_distinct_backdoors(trained) -> None:
    # Per-user copies with their own noise watermark (own pattern and target) are told apart.
    model, data = trained
    opts = {"num_keys": 20, "epochs": 5, "lr": 3e-3, "batch_size": 32}
    copies = {
        u: WATERMARKS.build("zhang-noise", {**opts, "seed": s}).embed(model, data) for u, s in (("a", 1), ("b", 2))
    }
    keys = {u: c.key for u, c in copies.items()}
    for user, copy_ in copies.items():
        best, scores = trace(copy_.model, keys)
        other = "b" if user == "a" else "a"
        assert best == user and scores[user] >= 0.9 and scores[other] <= 0.2
    assert trace(model, {}) == (None, {})
