"""Round trip with the toy simulation: calo.sim writes, calo.io reads, every field agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import uproot

from calo.io import HitDataset, read_data, to_padded
from calo.sim.writer import write_root


def test_sim_file_reads_with_default_schema(tmp_path: Path) -> None:
    path = tmp_path / "sim.root"
    info = write_root(path, n_events=12, seed=3, progress=False, write_config=False)
    data, summary = read_data(path)
    assert summary.events_kept == len(data) == 12 and summary.n_skipped == 0
    assert summary.hits_kept == info["hits"]

    arr = uproot.open(path)["events"].arrays()
    k = len([f for f in arr.fields if f.startswith("hit_frac_")])
    for i, d in enumerate(data):
        a = arr[i]
        pos = np.stack([a["hit_x"], a["hit_y"], a["hit_z"]], axis=1)
        np.testing.assert_array_equal(d.pos.numpy(), pos)
        np.testing.assert_array_equal(d.energy.numpy(), a["hit_energy"].to_numpy())
        np.testing.assert_array_equal(d.layer.numpy(), a["hit_layer"].to_numpy())
        np.testing.assert_array_equal(d.noise.numpy(), a["hit_noise"].to_numpy())
        frac = np.stack([a[f"hit_frac_{j}"].to_numpy() for j in range(k)], axis=1)
        np.testing.assert_array_equal(d.y.numpy(), frac)
        np.testing.assert_allclose(d.x[:, 3].numpy(), np.sqrt(a["hit_dx"] * a["hit_dy"]))
        np.testing.assert_array_equal(d.x[:, 4].numpy(), a["hit_dz"].to_numpy())
        np.testing.assert_allclose(d.x[:, 5].numpy(), np.log1p(a["hit_energy"].to_numpy()))
        npart = len(a["particle_energy"])
        np.testing.assert_array_equal(
            d.particle_energy[0, :npart].numpy(), a["particle_energy"].to_numpy()
        )
        np.testing.assert_array_equal(d.particle_pdg[0, :npart].numpy(), a["particle_pdg"])
        np.testing.assert_array_equal(
            d.particle_deposited[0, :npart].numpy(), a["particle_deposited"].to_numpy()
        )
        assert d.event_id.item() == a["event"]
        # physics of the format: fractions sum to 1 on signal hits, 0 on noise-only hits,
        # and hit_truth is the particle with the largest fraction
        sums = d.y.sum(1)
        torch.testing.assert_close(sums[~d.noise], torch.ones(int((~d.noise).sum())))
        assert (sums[d.noise] == 0).all()
        truth = a["hit_truth"].to_numpy()
        sig = ~d.noise.numpy()
        np.testing.assert_array_equal(d.y.argmax(1).numpy()[sig], truth[sig])
        assert (truth[~sig] == -1).all()


def test_sim_file_through_dataset_and_padded_view(tmp_path: Path) -> None:
    path = tmp_path / "sim.root"
    write_root(path, n_events=10, seed=1, progress=False, write_config=False)
    ds = HitDataset(path, normalization="fit")
    x = torch.cat([d.x for d in ds]).double()
    np.testing.assert_allclose(x.mean(0).numpy(), 0.0, atol=1e-5)
    X, n, rep = to_padded(list(ds), v_max=32)
    assert X.shape == (10, 32, 7)
    assert n.tolist() == [min(d.num_nodes, 32) for d in ds]
    assert rep.hits_dropped == sum(max(d.num_nodes - 32, 0) for d in ds)
