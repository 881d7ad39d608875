"""The paper's architectures: sizes, output contract, independence of events."""

from __future__ import annotations

import pytest
import torch

from calo.config import apply_overrides
from calo.errors import ConfigError
from calo.models import (
    DGCNNModel,
    GarNetModel,
    GravNetModel,
    ModelConfig,
    build_model,
    count_parameters,
)

NAMES = ["gravnet", "garnet", "edgeconv"]


@pytest.mark.parametrize("name", NAMES)
def test_paper_defaults_have_about_100k_parameters(name: str) -> None:
    n = count_parameters(build_model(ModelConfig(name=name)))
    assert 85_000 <= n <= 115_000, n


def test_gravnet_parameter_count_matches_hand_count() -> None:
    # block 1: dense 14->64->64->64, GravNet(64 -> S 4, F_LR 22, out 48 from [64, mean 22, max 22])
    dense1 = (14 * 64 + 64) + 2 * (64 * 64 + 64)
    dense_n = (96 * 64 + 64) + 2 * (64 * 64 + 64)
    conv = (64 * 4 + 4) + (64 * 22 + 22)
    bn = 2 * 48
    head = (192 * 128 + 128) + (128 * 3 + 3) + (3 * 2 + 2)
    per_out = count_parameters(GravNetModel()) - (dense1 + 3 * dense_n + 4 * (conv + bn) + head)
    # what remains is the four GravNet output transforms acting on [x, mean, max] -> 48
    assert per_out % 4 == 0
    assert per_out // 4 in (108 * 48 + 48, 108 * 48)


def _two_events(f: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, f, generator=g)
    batch = torch.tensor([0] * 30 + [1] * 20)
    return x, batch


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [2, 3])
def test_output_is_a_fraction_per_hit(name: str, k: int) -> None:
    model = build_model(apply_overrides(ModelConfig(name=name, n_showers=k), []))
    x, batch = _two_events()
    out = model(x, batch)
    assert out.shape == (50, k)
    assert torch.all(out >= 0)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(50))
    out.sum().backward()  # differentiable end to end
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", NAMES)
def test_events_do_not_talk_to_each_other(name: str) -> None:
    small = {
        "gravnet": ["gravnet.k=5"],
        "garnet": ["garnet.n_blocks=3"],
        "edgeconv": ["edgeconv.k=5"],
    }[name]
    model = build_model(apply_overrides(ModelConfig(name=name), small)).eval()
    x, batch = _two_events()
    both = model(x, batch)
    alone = model(x[:30], batch[:30])
    torch.testing.assert_close(both[:30], alone, atol=1e-5, rtol=1e-4)
    # changing event 1 leaves event 0's output unchanged
    x2 = x.clone()
    x2[30:] += 3.0
    torch.testing.assert_close(model(x2, batch)[:30], both[:30], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_hit_order_within_an_event_does_not_matter(name: str) -> None:
    model = build_model(ModelConfig(name=name)).eval()
    x, batch = _two_events()
    perm = torch.cat([torch.randperm(30, generator=torch.Generator().manual_seed(2)),
                      30 + torch.arange(20)])  # fmt: skip
    torch.testing.assert_close(model(x[perm], batch), model(x, batch)[perm], atol=1e-5, rtol=1e-4)


def test_batch_object_and_tensors_give_the_same_output() -> None:
    from torch_geometric.data import Batch, Data

    x, _ = _two_events()
    data = Batch.from_data_list([Data(x=x[:30]), Data(x=x[30:])])
    model = GarNetModel(config=None).eval()
    torch.testing.assert_close(model(data), model(data.x, data.batch))


def test_sizes_are_configurable() -> None:
    cfg = apply_overrides(ModelConfig(), ["gravnet.n_blocks=2", "gravnet.dense=[32]"])
    m = build_model(cfg)
    assert isinstance(m, GravNetModel) and len(m.convs) == 2
    assert count_parameters(m) < count_parameters(GravNetModel())
    assert "blocks=2" in repr(m)
    assert len(DGCNNModel().convs) == 4 and len(GarNetModel().convs) == 11


def test_potentials_are_selectable_from_the_configuration() -> None:
    default = build_model(ModelConfig())
    assert {c.potential for c in default.convs} == {"exp10"}  # torch_geometric's GravNet
    assert {c.potential for c in GarNetModel().convs} == {"exp_abs"}  # the paper's GarNet
    cfg = apply_overrides(ModelConfig(), ["gravnet.potential=gauss", "garnet.potential=gauss"])
    gravnet = build_model(cfg)
    assert {c.potential for c in gravnet.convs} == {"gauss"}
    cfg.name = "garnet"
    assert {c.potential for c in build_model(cfg).convs} == {"gauss"}
    # the potential changes the output of the same weights
    torch.manual_seed(0)
    x, batch = torch.randn(30, 7), torch.zeros(30, dtype=torch.long)
    gravnet.load_state_dict(default.state_dict())
    default.eval(), gravnet.eval()
    with torch.no_grad():
        assert not torch.allclose(default(x, batch), gravnet(x, batch))


@pytest.mark.parametrize(
    "override",
    [
        "name=transformer",
        "gravnet.k=0",
        "gravnet.dense=[]",
        "garnet.n_aggregators=-1",
        "n_showers=0",
        "gravnet.potential=coulomb",
        "garnet.potential=1",
    ],
)
def test_invalid_model_config_is_a_config_error(override: str) -> None:
    with pytest.raises(ConfigError):
        apply_overrides(ModelConfig(), [override])


@pytest.mark.parametrize(
    ("name", "small"),
    [
        ("gravnet", ["gravnet.n_blocks=1", "gravnet.dense=[16]", "gravnet.k=6"]),
        ("garnet", ["garnet.n_blocks=2", "garnet.input_dense=16", "garnet.out_channels=16"]),
        ("edgeconv", ["edgeconv.n_blocks=2", "edgeconv.k=6", "edgeconv.edge_mlp=[16]"]),
    ],
)
def test_every_model_learns_a_separable_split(name: str, small: list[str]) -> None:
    """Two blobs per event, the truth fraction is the blob: 60 Adam steps cut the loss by 3x."""
    from calo.train.losses import permutation_invariant_loss

    g = torch.Generator().manual_seed(4)
    n_ev, n_hit = 6, 20
    centres = torch.randn(n_ev, 2, 3, generator=g) * 3
    side = (torch.arange(n_hit) >= n_hit // 2).long()
    pos = centres[:, side] + 0.5 * torch.randn(n_ev, n_hit, 3, generator=g)
    x = torch.cat([pos, torch.rand(n_ev, n_hit, 4, generator=g)], dim=2).reshape(-1, 7)
    y = torch.nn.functional.one_hot(side, 2).float().repeat(n_ev, 1)
    energy = torch.rand(n_ev * n_hit, generator=g) + 0.5
    batch = torch.arange(n_ev).repeat_interleave(n_hit)
    model = build_model(apply_overrides(ModelConfig(name=name), small))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        return permutation_invariant_loss(model(x, batch), y, energy, batch).loss

    first = float(loss().detach())
    for _ in range(60):
        opt.zero_grad()
        step = loss()
        step.backward()
        opt.step()
    assert float(loss().detach()) < first / 3


@pytest.mark.parametrize("name", NAMES)
def test_paper_sized_models_keep_a_per_hit_signal_at_initialisation(name: str) -> None:
    """The DGCNN once lost all variation across hits through its blocks (constant output,
    no gradient to learn from); every model's output must vary from hit to hit at the start."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).train()
    x = torch.randn(400, 7)
    batch = torch.arange(2).repeat_interleave(200)
    pred = model(x, batch)
    assert float(pred[:, 0].std()) > 1e-3, float(pred[:, 0].std())
    pred[:, 0].pow(2).sum().backward()
    first = next(p for p in model.parameters() if p.grad is not None)
    assert float(first.grad.abs().max()) > 1e-6
