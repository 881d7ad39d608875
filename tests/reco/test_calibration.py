"""The share calibration: fit on hand-made cases, application, file round trip, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from calo.errors import ConfigError, DataError
from calo.reco.baseline import profile_refine
from calo.reco.calibration import (
    GRID,
    ShareCalibration,
    fit_share_calibration,
    model_split_features,
    share_error,
    split_features,
)
from calo.reco.config import BaselineConfig, CalibrationConfig


def _even_split_events(n: int, rng: np.random.Generator, energy: tuple[float, float]) -> np.ndarray:
    """Features of events the model splits evenly (s ~ 0.5, h ~ 0) at event energies in ``energy``."""
    return np.stack(
        [0.5 - rng.uniform(0, 1e-3, n), rng.uniform(0, 0.05, n), rng.uniform(*energy, n)], axis=1
    )


def test_share_error_is_zero_at_the_true_share_and_symmetric() -> None:
    ts = np.array([0.1, 0.25, 0.4])
    np.testing.assert_allclose(share_error(ts, ts), 0.0, atol=1e-12)
    np.testing.assert_allclose(share_error(1 - ts, ts), 0.0, atol=1e-12)  # the other matching
    # an even split of a 0.25 / 0.75 event: (0.5/0.25 - 1)^2 + (0.5/0.75 - 1)^2
    assert share_error(np.array([0.5]), np.array([0.25]))[0] == pytest.approx(1 + 1 / 9)


def test_fit_learns_the_true_share_of_evenly_split_events_per_energy() -> None:
    rng = np.random.default_rng(1)
    # low-energy events really share 0.45, high-energy ones 0.2: only the energy tells them apart
    f = np.concatenate(
        [_even_split_events(300, rng, (10, 30)), _even_split_events(300, rng, (60, 100))]
    )
    ts = np.concatenate([np.full(300, 0.45), np.full(300, 0.2)])
    cal = fit_share_calibration(f, ts, CalibrationConfig(energy_bins=2))
    got = cal.lookup(np.array([[0.499, 0.01, 20.0], [0.499, 0.01, 80.0]]))
    step = GRID[1] - GRID[0]
    np.testing.assert_allclose(got, [0.45, 0.2], atol=step / 2 + 1e-9)
    assert cal.n_train == 600 and cal.n_skipped == 0
    # without the energy one share serves both populations, somewhere between them
    one = fit_share_calibration(f, ts, CalibrationConfig(energy_bins=1)).lookup(f[:1])[0]
    assert 0.2 < one < 0.45


def test_bins_without_enough_events_or_gain_keep_the_model_split() -> None:
    rng = np.random.default_rng(2)
    f = _even_split_events(15, rng, (20, 40))  # fewer than min_events = 20
    cal = fit_share_calibration(f, np.full(15, 0.25), CalibrationConfig(energy_bins=1))
    assert cal.n_calibrated == 0 and np.isnan(cal.lookup(f)).all()
    # the model already gives the true share: no bin beats it
    f2 = _even_split_events(100, rng, (20, 40))
    f2[:, 0] = 0.3
    cal2 = fit_share_calibration(f2, np.full(100, 0.3), CalibrationConfig(energy_bins=1))
    assert cal2.n_calibrated == 0


def test_events_without_signal_or_with_nan_are_counted_not_fitted() -> None:
    rng = np.random.default_rng(3)
    f = _even_split_events(100, rng, (20, 40))
    ts = np.full(100, 0.25)
    f[:3, 2] = np.nan
    ts[3:5] = 0.0  # no signal
    cal = fit_share_calibration(f, ts, CalibrationConfig(energy_bins=1))
    assert cal.n_train == 95 and cal.n_skipped == 5
    with pytest.raises(DataError, match="no two-shower training event"):
        fit_share_calibration(f[:3], ts[:3])
    with pytest.raises(DataError, match=r"\[B, 3\]"):
        fit_share_calibration(f[:, :2], ts)


def _event(fractions: list[list[float]], energy: list[float]) -> tuple[torch.Tensor, ...]:
    p, e = torch.tensor(fractions), torch.tensor(energy)
    return p, e, torch.zeros(len(energy), dtype=torch.long)


def test_features_and_application_by_hand() -> None:
    # hits of 2, 2 and 4 GeV: column 1 takes (0.5 * 2 + 0.5 * 2) / 8 = 0.25, h = 4 / 8
    p, e, b = _event([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]], [2.0, 2.0, 4.0])
    f, col = split_features(p, e, b)
    assert col.tolist() == [1]
    np.testing.assert_allclose(f[0].numpy(), [0.25, 0.5, 8.0], rtol=1e-6)
    cal = ShareCalibration([[0.0, 0.5], [0.0, 1.0], [0.0, 100.0]], np.array([[[0.125]]]), 1)
    q = cal.apply(p, e, b)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(3))
    # the smaller column's fractions halve, so its share becomes 0.125; the hit order is kept
    torch.testing.assert_close(q[:, 1], torch.tensor([0.25, 0.25, 0.0]))
    assert float(q[:, 1] @ e) / 8.0 == pytest.approx(0.125)
    # an event outside every calibrated bin is left as it was
    nan = ShareCalibration(cal.edges, np.array([[[np.nan]]]), 1)
    torch.testing.assert_close(nan.apply(p, e, b), p)
    # an event without energy has no share to move: its fractions stay as they are
    torch.testing.assert_close(cal.apply(p, torch.zeros(3), b), p)
    with pytest.raises(DataError, match=r"\[N, 2\]"):
        split_features(torch.ones(3, 3) / 3, e, b)


def test_applied_to_a_batch_each_event_gets_its_own_share() -> None:
    p = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.9, 0.1]])
    e, b = torch.ones(4), torch.tensor([0, 0, 1, 1])
    # share bins [0, 0.25) and [0.25, 0.5]: the even event goes to 0.3, the crisp one stays
    cal = ShareCalibration([[0.0, 0.25, 0.5], [0.0, 1.0], [0.0, 100.0]],
                           np.array([[[np.nan]], [[0.3]]]), 1)  # fmt: skip
    q = cal.apply(p, e, b)
    torch.testing.assert_close(q[2:], p[2:])
    assert float(q[:2].min(dim=1).values.sum()) / 2 == pytest.approx(0.3)


def test_round_trip_and_bad_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    cal = fit_share_calibration(_even_split_events(200, rng, (20, 40)), np.full(200, 0.25),
                                CalibrationConfig(energy_bins=1))  # fmt: skip
    path = cal.save(tmp_path / "c.json")
    back = ShareCalibration.load(path)
    np.testing.assert_array_equal(back.table, cal.table)
    assert back.edges == cal.edges and back.n_train == 200
    good = json.loads(path.read_text())
    with pytest.raises(DataError, match="not found"):
        ShareCalibration.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        ShareCalibration.load(tmp_path / "bad.json")
    cases = {
        "format": ({**good, "format": "x"}, "not a calo share calibration"),
        "version": ({**good, "version": 9}, "version 9"),
        "shape": ({**good, "shape": [2, 2, 2]}, "malformed"),
        "share": ({**good, "table": [0.9] * len(good["table"])}, "malformed"),
        "missing": ({k: v for k, v in good.items() if k != "edges"}, "malformed"),
        "edges": ({**good, "edges": [e[::-1] for e in good["edges"]]}, "increasing"),
    }
    for name, (d, match) in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(d))
        with pytest.raises(DataError, match=match) as info:
            ShareCalibration.load(f)
        assert str(f) in str(info.value), name


def test_model_features_need_two_truth_showers() -> None:
    class Even(torch.nn.Module):
        def forward(self, data: Data) -> torch.Tensor:
            return torch.full((data.num_nodes, 2), 0.5)

    ev = Data(x=torch.zeros(4, 1), energy=torch.tensor([1.0, 1.0, 1.0, 3.0]),
              y=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]))  # fmt: skip
    plain = CalibrationConfig(refine_iterations=0)  # these events have no positions
    f, ts = model_split_features(Even(), [ev, ev], config=plain)
    np.testing.assert_allclose(f[:, :2], [[0.5, 0.0]] * 2)
    np.testing.assert_allclose(ts, [1 / 6] * 2, rtol=1e-6)
    with pytest.raises(DataError, match="needs the hits' positions"):
        model_split_features(Even(), [ev])  # the default refines
    three = Data(x=torch.zeros(2, 1), energy=torch.ones(2), y=torch.ones(2, 3) / 3)
    with pytest.raises(DataError, match="two truth showers"):
        model_split_features(Even(), [three], config=plain)
    with pytest.raises(DataError, match="no events"):
        model_split_features(Even(), [])


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"share_bins": 0}, "share_bins must be >= 1"),
        ({"energy_bins": -1}, "energy_bins must be >= 0"),
        ({"min_gain": 1.0}, r"min_gain must be in \[0, 1\)"),
        ({"min_events": 0}, "min_events must be >= 1"),
        ({"refine_iterations": -1}, "refine_iterations must be >= 0"),
    ],
)
def test_bad_calibration_settings(override: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CalibrationConfig(**override)


def _separated_event() -> Data:
    """Two showers 6 cm apart (4 hits each) and a network split that is off on two hits."""
    pos = torch.tensor([[0.0, 0, 1], [0.5, 0, 2], [0, 0.5, 3], [-0.5, 0, 2],
                        [6.0, 0, 1], [6.5, 0, 2], [6, 0.5, 3], [5.5, 0, 2]])  # fmt: skip
    y = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4)
    return Data(x=torch.zeros(8, 1), pos=pos, energy=torch.tensor([8.0, 2, 1, 1, 4, 1, 1, 1]), y=y)


class _Off(torch.nn.Module):
    def forward(self, data: Data) -> torch.Tensor:
        p = data.y.clone()
        p[3], p[7] = torch.tensor([0.3, 0.7]), torch.tensor([0.6, 0.4])
        return p


def test_calibration_with_refinement_refines_first_and_records_it(tmp_path: Path) -> None:
    ev = _separated_event()
    batch = torch.zeros(8, dtype=torch.long)
    p = _Off()(ev)
    prof = BaselineConfig(radius=0.8, slope_damping=10.0)
    cfg = CalibrationConfig(energy_bins=1, refine_iterations=2)
    f, ts = model_split_features(_Off(), [ev] * 30, config=cfg, profile=prof)
    refined = profile_refine(p, ev.pos, ev.energy, batch, prof, 2)
    assert float((refined - ev.y).abs().max()) < 0.05  # the profile repairs the two hits
    np.testing.assert_allclose(f[0], split_features(refined, ev.energy, batch)[0][0].numpy(),
                               rtol=1e-6)  # fmt: skip
    cal = fit_share_calibration(f, ts, cfg, prof)
    assert (cal.refine_iterations, cal.radius, cal.slope_damping) == (2, 0.8, 10.0)
    torch.testing.assert_close(cal.refine(p, ev.pos, ev.energy, batch), refined)
    torch.testing.assert_close(
        cal.apply(p, ev.energy, batch, pos=ev.pos), cal.scale_shares(refined, ev.energy, batch)
    )
    with pytest.raises(DataError, match="needs pos"):
        cal.apply(p, ev.energy, batch)
    back = ShareCalibration.load(cal.save(tmp_path / "c.json"))
    assert (back.refine_iterations, back.radius, back.slope_damping) == (2, 0.8, 10.0)
    torch.testing.assert_close(back.refine(p, ev.pos, ev.energy, batch), refined)
    # without refinement, refine() is the identity and needs no positions
    plain = fit_share_calibration(f, ts, CalibrationConfig(energy_bins=1, refine_iterations=0))
    assert plain.refine(p, None, ev.energy, batch) is p


def test_version_1_files_read_without_refinement_and_bad_refinement_settings(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    cal = fit_share_calibration(_even_split_events(100, rng, (20, 40)), np.full(100, 0.25),
                                CalibrationConfig(energy_bins=1))  # fmt: skip
    d = cal.to_dict()
    assert d["version"] == 2 and d["refine"]["iterations"] == 2
    old = {k: v for k, v in d.items() if k != "refine"} | {"version": 1}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    v1 = ShareCalibration.load(tmp_path / "v1.json")
    assert v1.refine_iterations == 0
    np.testing.assert_array_equal(v1.table, cal.table)
    no_refine = {k: v for k, v in d.items() if k != "refine"}
    cases = {
        "radius": {**d, "refine": {"iterations": 1, "radius": 0.0}},
        "iterations": {**d, "refine": {"iterations": -2}},
        "fractional": {**d, "refine": {"iterations": 1.7}},
        "boolean": {**d, "refine": {"iterations": True}},
        "infinite": {**d, "refine": {"iterations": float("inf")}},
        "none": {**d, "refine": None},
        "missing": no_refine,
        "n_train": {**d, "n_train": 2.5},
    }
    for name, bad in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(bad))
        with pytest.raises(DataError, match="malformed") as info:
            ShareCalibration.load(f)
        assert str(f) in str(info.value), name
    for version in (True, 1.0, "1"):  # only the integers 1 and 2
        f = tmp_path / "version.json"
        f.write_text(json.dumps({**old, "version": version}))
        with pytest.raises(DataError, match="version"):
            ShareCalibration.load(f)
