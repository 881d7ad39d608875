"""The padded FPGA view: ordering, zero padding, truncation policies and their counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from calo.errors import ConfigError, DataError
from calo.io import read_data, to_padded


def _event(energies: list[float]) -> Data:
    e = torch.tensor(energies)
    # feature 0 = energy, feature 1 = stored position
    return Data(x=torch.stack([e, torch.arange(len(e), dtype=torch.float32)], 1), energy=e)


def test_sorted_by_energy_and_zero_padded() -> None:
    X, n, rep = to_padded([_event([1.0, 3.0, 2.0]), _event([0.5])], v_max=4)
    assert X.shape == (2, 4, 2) and X.dtype == torch.float32 and n.dtype == torch.int64
    assert n.tolist() == [3, 1]
    assert X[0, :, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    assert X[0, :3, 1].tolist() == [1.0, 2.0, 0.0]
    assert X[1, :, 0].tolist() == [0.5, 0.0, 0.0, 0.0]
    assert (rep.events, rep.events_truncated, rep.hits_dropped, rep.energy_dropped) == (2, 0, 0, 0)


def test_keep_highest_counts_what_was_dropped() -> None:
    events = [_event([1.0, 5.0, 2.0, 4.0, 3.0]), _event([1.0, 1.0]), _event([9.0, 0.5, 0.25])]
    X, n, rep = to_padded(events, v_max=2)
    assert n.tolist() == [2, 2, 2]
    assert X[0, :, 0].tolist() == [5.0, 4.0]
    assert X[2, :, 0].tolist() == [9.0, 0.5]
    assert rep.events_truncated == 2 and rep.hits_dropped == 4 and rep.hits_total == 10
    assert rep.energy_dropped == pytest.approx(1 + 2 + 3 + 0.25)
    assert rep.energy_total == pytest.approx(15 + 2 + 9.75)
    assert rep.energy_fraction_dropped == pytest.approx(6.25 / 26.75)
    assert "truncated 2/3 events" in str(rep)


def test_keep_highest_without_sorting_keeps_stored_order() -> None:
    X, n, rep = to_padded([_event([1.0, 5.0, 2.0, 4.0])], v_max=2, sort_by_energy=False)
    assert n.tolist() == [2]
    assert X[0, :, 0].tolist() == [5.0, 4.0] and X[0, :, 1].tolist() == [1.0, 3.0]
    assert rep.energy_dropped == pytest.approx(3.0)


def test_keep_first_and_error_policies() -> None:
    ev = _event([1.0, 5.0, 2.0, 4.0])
    X, _, rep = to_padded([ev], v_max=2, truncation="keep_first")
    assert X[0, :, 0].tolist() == [5.0, 1.0]  # first two stored hits, then sorted
    assert rep.energy_dropped == pytest.approx(6.0)
    X, _, _ = to_padded([ev], v_max=2, truncation="keep_first", sort_by_energy=False)
    assert X[0, :, 0].tolist() == [1.0, 5.0]
    with pytest.raises(DataError, match="more than v_max=2"):
        to_padded([_event([1.0]), ev], v_max=2, truncation="error")
    with pytest.raises(ConfigError):
        to_padded([ev], v_max=2, truncation="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        to_padded([ev], v_max=0)


def test_feature_selection_and_callable() -> None:
    ev = _event([1.0, 3.0])
    X, _, _ = to_padded(ev, v_max=2, features=[1])
    assert X.shape == (1, 2, 1) and X[0, :, 0].tolist() == [1.0, 0.0]
    X, _, _ = to_padded(ev, v_max=2, features=lambda b: (b.energy * 0.5)[:, None])
    assert X[0, :, 0].tolist() == [1.5, 0.5]


def test_matches_per_event_loop_on_read_data(calo_file: Path) -> None:
    """Vectorised packing agrees with a plain per-event reference on real reader output."""
    data, _ = read_data(calo_file)
    batch = next(iter(DataLoader(data, batch_size=len(data))))
    assert isinstance(batch, Batch)
    v_max = 16
    X, n, rep = to_padded(batch, v_max=v_max)
    dropped_hits, dropped_e = 0, 0.0
    for b, d in enumerate(data):
        order = torch.sort(d.energy, descending=True, stable=True).indices
        keep = order[:v_max]
        ref = torch.zeros(v_max, d.x.shape[1])
        ref[: len(keep)] = d.x[keep]
        torch.testing.assert_close(X[b], ref)
        assert n[b] == len(keep)
        dropped_hits += len(order) - len(keep)
        dropped_e += float(d.energy[order[v_max:]].double().sum())
    assert rep.hits_dropped == dropped_hits > 0
    assert rep.energy_dropped == pytest.approx(dropped_e)
    assert rep.events_truncated == sum(d.num_nodes > v_max for d in data)
    assert np.isclose(rep.energy_total, float(torch.cat([d.energy for d in data]).double().sum()))
