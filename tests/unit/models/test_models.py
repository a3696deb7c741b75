import pytest
import torch

from advparams.errors import UnknownNameError
from advparams.models import MODELS, build_model, count_parameters, list_models


@pytest.mark.parametrize(
    "name,opts,shape,params",
    [
        ("lenet", {}, (1, 28, 28), 61706),
        ("vgg", {}, (1, 28, 28), None),
        ("vgg", {"in_channels": 3, "input_size": 32}, (3, 32, 32), None),
        ("resnet18", {}, (3, 32, 32), 11173962),
    ],
)
def test_forward_shapes_and_sizes(name, opts, shape, params) -> None:
    model = build_model(name, opts, seed=0)
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    if params is not None:
        assert count_parameters(model) == params


def test_vgg_has_batchnorm_and_registry_lists_all() -> None:
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("vgg").modules())
    assert list_models() == MODELS.names() == ["bert", "gpt2", "lenet", "llama", "resnet18", "vgg", "vit"]
    with pytest.raises(UnknownNameError):
        build_model("alexnet")


def test_seeded_build_is_reproducible_and_leaves_global_rng() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("lenet", seed=5)
    assert torch.equal(torch.rand(1), expected_next)  # global RNG untouched
    b = build_model("lenet", seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
