"""The condensation head on the three backbones: outputs, shared features, parameters."""

from __future__ import annotations

import pytest
import torch

from calo.errors import ConfigError
from calo.models import CondensationModel, ModelConfig, build_model
from calo.models.config import (
    CondensationHeadConfig,
    EdgeConvModelConfig,
    GarNetModelConfig,
    GravNetModelConfig,
)

TINY = {
    "gravnet": {"gravnet": GravNetModelConfig(n_blocks=2, dense=(8,), out_channels=6, k=4)},
    "garnet": {"garnet": GarNetModelConfig(input_dense=8, n_blocks=2, out_channels=6)},
    "edgeconv": {"edgeconv": EdgeConvModelConfig(input_dense=8, n_blocks=2, k=4, edge_mlp=(8,))},
}


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(30, 5, generator=g), torch.tensor([0] * 12 + [1] * 18)


@pytest.mark.parametrize("name", ["gravnet", "garnet", "edgeconv"])
def test_backbone_features_feed_the_fraction_head(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, in_features=5, n_showers=3, **TINY[name])).eval()
    x, batch = _inputs()
    h, b = model.features(x, batch)
    assert h.shape == (30, model.feature_channels) and torch.equal(b, batch)
    torch.testing.assert_close(model.head(h), model(x, batch), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["gravnet", "garnet", "edgeconv"])
@pytest.mark.parametrize("dims", [2, 3])
def test_condensation_outputs(name: str, dims: int) -> None:
    torch.manual_seed(1)
    head = CondensationHeadConfig(coord_dims=dims, hidden=(16,), position=True)
    model = CondensationModel(
        ModelConfig(name=name, in_features=5, condensation=head, **TINY[name])
    )
    x, batch = _inputs()
    out = model(x, batch)
    assert out.beta.shape == (30,) and out.coords.shape == (30, dims)
    assert out.correction.shape == (30,) and out.position.shape == (30, 2)
    assert bool(((out.beta > 0) & (out.beta < 1)).all()) and bool((out.correction > 0).all())
    # the backbone keeps its parameter names; the fraction head is gone
    keys = model.state_dict().keys()
    assert not any(k.startswith("backbone.head.") for k in keys)
    assert any(k.startswith("head.net.") for k in keys)
    # every parameter gets a gradient from beta, coords and the payload
    (out.beta.sum() + out.coords.sum() + out.correction.sum() + out.position.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    # one event's outputs do not depend on the other event (hits of event 1 moved)
    model.eval()
    a = model(x, batch)
    x2 = x.clone()
    x2[12:] += 1.0
    b = model(x2, batch)
    torch.testing.assert_close(a.coords[:12], b.coords[:12])


@pytest.mark.parametrize("kind", ["softplus", "exp"])
def test_correction_is_one_at_zero_output(kind: str) -> None:
    model = CondensationModel(
        ModelConfig(
            condensation=CondensationHeadConfig(correction=kind, hidden=(4,)), **TINY["gravnet"]
        )
    )
    last = model.head.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    out = model(torch.randn(6, 7))
    torch.testing.assert_close(out.correction, torch.ones(6))
    torch.testing.assert_close(out.beta, torch.full((6,), 0.5))


def test_head_config_errors() -> None:
    with pytest.raises(ConfigError, match="coord_dims"):
        CondensationHeadConfig(coord_dims=0)
    with pytest.raises(ConfigError, match="correction"):
        CondensationHeadConfig(correction="relu")
