"""The registered transformers (``vit``, ``bert``) and their fresh initialisation."""

from __future__ import annotations

import pytest
import torch

from advparams.attacks.base import reinitialised
from advparams.errors import ConfigError
from advparams.metrics.accuracy import logits_of
from advparams.models import build_model

pytest.importorskip("transformers", reason="transformers is installed by make (the test extra)")


def test_vit_classifies_images_of_the_data_sets_shape() -> None:
    model = build_model("vit", {"num_classes": 7, "in_channels": 3, "input_size": 32, "patch_size": 8}, seed=0)
    assert type(model).__name__ == "ViTForImageClassification"
    assert logits_of(model.eval(), torch.rand(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        build_model("vit", {"input_size": 30, "patch_size": 7})
    with pytest.raises(ConfigError, match="multiple of heads"):
        build_model("vit", {"hidden_size": 66, "heads": 4})


def test_bert_reads_its_attention_mask_from_the_padding() -> None:
    model = build_model("bert", {"num_classes": 3, "input_size": 16, "vocab_size": 50}, seed=0).eval()
    short = torch.tensor([[2, 7, 9, 11]])
    padded = torch.cat([short, torch.zeros(1, 12, dtype=torch.long)], dim=1)
    with torch.no_grad():
        a, b = logits_of(model, short), logits_of(model, padded)
        unmasked = model(padded, attention_mask=torch.ones_like(padded)).logits
    assert a.shape == (1, 3)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(unmasked, b, atol=1e-4)  # without the mask the padding would count
    with pytest.raises(ConfigError, match="token ids"):
        build_model("bert", {"in_channels": 3})


@pytest.mark.parametrize("name", ["vit", "bert"])
def test_a_fresh_copy_redraws_every_parameter_as_the_class_initialises_it(name: str) -> None:
    built = build_model(name, {}, seed=1)
    model = build_model(name, {}, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(3.0)  # far from any initialisation
    fresh, again = reinitialised(model, 5), reinitialised(model, 5)
    named = zip(model.named_parameters(), fresh.parameters(), again.parameters(), built.parameters(), strict=True)
    for (n, old), new, same, reference in named:
        assert not torch.equal(old, new), n  # the class token and position embeddings too
        assert torch.equal(new, same), n
        # drawn as the class draws it (the scale of a freshly built model), not shifted
        size, expected = float(new.detach().abs().mean()), float(reference.detach().abs().mean())
        assert abs(size - expected) <= 0.05 + 0.3 * expected, n
    assert float(next(model.parameters()).detach().mean()) > 2.0  # the input is left as it was
