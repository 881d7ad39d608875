"""Features, normalisation (fit, apply, serialise) and the dataset + DataLoader batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch_geometric.loader import DataLoader

from calo.errors import ConfigError
from calo.io import FeatureSpec, HitDataset, Normalization, ReadPolicy, Schema, read_data


def test_normalization_fit_apply_roundtrip(rng) -> None:
    x = rng.normal([1.0, -5.0, 100.0], [2.0, 0.5, 30.0], size=(5000, 3))
    norm = Normalization.fit(x, ("a", "b", "c"))
    np.testing.assert_allclose(norm.offset, x.mean(0))
    np.testing.assert_allclose(norm.scale, x.std(0))
    z = norm.apply(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)
    back = norm.invert(torch.tensor(z, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-4)


def test_normalization_serialises_through_yaml_and_torch(tmp_path: Path) -> None:
    norm = Normalization(("x", "layer"), [0.5, 10.0], [2.0, 5.0])
    d = yaml.safe_load(yaml.safe_dump(norm.to_dict()))
    assert Normalization.from_dict(d) == norm
    torch.save({"normalization": norm.to_dict()}, tmp_path / "ckpt.pt")
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert Normalization.from_dict(ck["normalization"]) == norm


def test_normalization_bad_values() -> None:
    with pytest.raises(ConfigError, match="scale is zero for \\['b'\\]"):
        Normalization(("a", "b"), [0, 0], [1, 0])
    with pytest.raises(ConfigError, match="2 offsets and scales"):
        Normalization(("a", "b"), [0], [1])
    with pytest.raises(ConfigError, match="needs 'names'"):
        Normalization.from_dict({"offset": [0]})
    # a constant column gets scale 1 instead of a division by zero
    n = Normalization.fit(np.array([[1.0, 3.0], [2.0, 3.0]]), ("a", "b"))
    assert n.scale.tolist() == [0.5, 1.0] and n.offset.tolist() == [1.5, 3.0]


def test_feature_spec_validation() -> None:
    with pytest.raises(ConfigError, match="unknown feature"):
        FeatureSpec(("x", "eta"))
    with pytest.raises(ConfigError, match="unique"):
        FeatureSpec(("x", "x"))
    assert FeatureSpec().names == (
        "x", "y", "z", "transverse_size", "depth", "log_energy", "layer",
    )  # fmt: skip


def test_dataset_fit_normalises_and_reapplies(calo_file: Path) -> None:
    train = HitDataset(calo_file, normalization="fit")
    x = torch.cat([d.x for d in train]).double()
    assert train.n_particles == 2 and len(train) == train.summary.events_kept == 20
    np.testing.assert_allclose(x.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(0, unbiased=False).numpy(), 1.0, atol=1e-5)
    # the same normalisation given explicitly (vectorised in the reader) gives the same x
    again = HitDataset(calo_file, normalization=train.normalization.to_dict())
    for a, b in zip(train, again, strict=True):
        torch.testing.assert_close(a.x, b.x)
    # raw features stay available through the identity normalisation
    raw = HitDataset(calo_file)
    assert raw.normalization == Normalization.identity(FeatureSpec().names)
    torch.testing.assert_close(train.normalization.invert(train[3].x), raw[3].x)


def test_dataset_from_data_list_does_not_touch_input(calo_file: Path) -> None:
    data, _ = read_data(calo_file)
    before = data[0].x.clone()
    ds = HitDataset(data, normalization="fit")
    assert torch.equal(data[0].x, before) and not torch.equal(ds[0].x, before)
    assert ds.summary.events_kept == len(data) and "kept 20 events" in str(ds.summary)
    with pytest.raises(ConfigError, match="normalisation is for features"):
        HitDataset(calo_file, normalization=Normalization.identity(("x",)))


def test_dataset_policy_and_schema(calo_file: Path) -> None:
    ds = HitDataset(calo_file, Schema.calo(), policy=ReadPolicy(max_events=7, max_hits=10))
    assert len(ds) == 7 and max(d.num_nodes for d in ds) == 10
    assert ds.summary.events_truncated > 0
    ds2 = HitDataset(calo_file, max_events=7, max_hits=10)
    assert [d.num_nodes for d in ds2] == [d.num_nodes for d in ds]


def test_dataloader_batching(calo_file: Path, events: dict) -> None:
    ds = HitDataset(calo_file)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    counts = events["counts"][:4]
    assert batch.num_graphs == 4
    assert batch.batch.tolist() == np.repeat(np.arange(4), counts).tolist()
    assert batch.ptr.tolist() == [0, *np.cumsum(counts).tolist()]
    assert batch.x.shape == (counts.sum(), 7) and batch.y.shape == (counts.sum(), 2)
    assert batch.particle_energy.shape == (4, 2)
    assert batch.particle_pdg.shape == (4, 2) and batch.particle_xy.shape == (4, 2, 2)
    assert batch.event_id.tolist() == events["event"][:4].tolist()
    assert batch.weight.shape == (4,)
    torch.testing.assert_close(batch.particle_energy[1], ds[1].particle_energy[0])


def test_read_policy_from_config() -> None:
    from calo.config import apply_overrides, from_dict, to_dict

    p = from_dict(ReadPolicy, {"max_hits": 128, "step_size": 1000})
    assert p.step_size == 1000 and p.on_too_many_hits == "truncate"
    p = apply_overrides(p, ["step_size=10 MB", "on_negative_energy=clip"])
    assert p.step_size == "10 MB" and p.on_negative_energy == "clip"
    assert from_dict(ReadPolicy, to_dict(p)) == p
    with pytest.raises(ConfigError, match="on_negative_energy"):
        apply_overrides(p, ["on_negative_energy=abs"])
