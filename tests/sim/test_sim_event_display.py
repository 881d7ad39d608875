"""Event display: both views drawn, colours follow the truth fractions, Data input accepted."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from calo.errors import ConfigError
from calo.plots.events import event_arrays, plot_event
from calo.sim import SimConfig, generate


@pytest.fixture(scope="module")
def event():
    return generate(SimConfig(), 1, seed=7)[0]


def test_event_arrays_match_the_record(event) -> None:
    a = event_arrays(event)
    np.testing.assert_array_equal(a["energy"], event.hit.energy.to_numpy())
    np.testing.assert_array_equal(a["frac0"], event.hit.frac_0.to_numpy())
    assert a["impacts"].shape == (2, 2)


def test_plot_event_fraction_colours(event, tmp_path) -> None:
    import matplotlib.pyplot as plt

    fig = plot_event(event, title="t")
    ax_xy, ax_zr = fig.axes[:2]
    assert ax_xy.get_xlabel() == "x [cm]" and ax_zr.get_xlabel() == "z [cm]"
    # one box per hit in x-y, one marker per hit in z-r
    n = len(event.hit.energy)
    assert len(ax_xy.collections[0].get_paths()) == n
    colours = ax_zr.collections[0].get_facecolors()
    assert len(colours) == n
    # hits mostly from particle 0 are red (coolwarm high end), those of particle 1 blue;
    # markers are drawn in order of increasing energy
    order = np.argsort(event.hit.energy.to_numpy())
    f_sorted = event.hit.frac_0.to_numpy()[order]
    signal = ~event.hit.noise.to_numpy()[order]
    red = colours[:, 0] - colours[:, 2]
    assert np.all(red[f_sorted > 0.95] > 0)
    assert np.all(red[(f_sorted < 0.05) & signal] < 0)
    assert (f_sorted > 0.95).any() and ((f_sorted < 0.05) & signal).any()
    fig.savefig(tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 10_000
    plt.close(fig)


def test_plot_event_from_data_and_energy_colour() -> None:
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    n = 30
    data = Data(
        pos=torch.tensor(rng.normal(0, 3, (n, 3)), dtype=torch.float32),
        energy=torch.tensor(rng.exponential(1.0, n), dtype=torch.float32),
        y=torch.tensor(np.stack([np.ones(n), np.zeros(n)], 1), dtype=torch.float32),
    )
    fig = plot_event(data, color="energy")
    assert len(fig.axes[1].collections[0].get_offsets()) == n
    plt.close(fig)
    with pytest.raises(ConfigError, match="color"):
        plot_event(data, color="pdg")
