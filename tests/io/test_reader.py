"""Reading calo trees and foreign trees into Data: every field, schemas, chunking, limits."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from iotrees import jag, make_events, write_calo_tree, write_tree

from calo.io import ChunkInfo, FeatureSpec, Schema, iterate_events, read_data


def _split(a: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(a, np.cumsum(counts)[:-1])


def test_round_trip_every_field(calo_file: Path, events: dict) -> None:
    data, summary = read_data(calo_file)
    c, pc = events["counts"], events["npart"]
    assert len(data) == len(c) == summary.events_kept == summary.events_read
    assert summary.n_skipped == 0 and summary.hits_kept == c.sum()
    k = events["frac"].shape[1]
    for i, d in enumerate(data):
        sl = slice(int(c[:i].sum()), int(c[: i + 1].sum()))
        psl = slice(int(pc[:i].sum()), int(pc[: i + 1].sum()))
        pos = np.stack([events["x"][sl], events["y"][sl], events["z"][sl]], axis=1)
        np.testing.assert_array_equal(d.pos.numpy(), pos)
        np.testing.assert_array_equal(d.energy.numpy(), events["energy"][sl])
        np.testing.assert_array_equal(d.y.numpy(), events["frac"][sl])
        np.testing.assert_array_equal(d.noise.numpy(), events["noise"][sl])
        np.testing.assert_array_equal(d.layer.numpy(), events["layer"][sl])
        assert d.layer.dtype == torch.int64 and d.noise.dtype == torch.bool
        assert d.pos.dtype == d.x.dtype == d.y.dtype == torch.float32
        # x = paper features, raw
        x = d.x.numpy()
        np.testing.assert_allclose(x[:, :3], pos)
        np.testing.assert_allclose(x[:, 3], np.sqrt(events["dx"][sl] * events["dy"][sl]), rtol=1e-6)
        np.testing.assert_allclose(x[:, 4], events["dz"][sl])
        np.testing.assert_allclose(x[:, 5], np.log1p(events["energy"][sl]), rtol=1e-6)
        np.testing.assert_allclose(x[:, 6], events["layer"][sl])
        # particles padded to K
        npi = pc[i]
        assert d.particle_energy.shape == (1, k) and d.particle_xy.shape == (1, k, 2)
        np.testing.assert_array_equal(d.particle_energy[0, :npi].numpy(), events["p_energy"][psl])
        np.testing.assert_array_equal(d.particle_pdg[0, :npi].numpy(), events["p_pdg"][psl])
        np.testing.assert_array_equal(
            d.particle_deposited[0, :npi].numpy(), events["p_deposited"][psl]
        )
        np.testing.assert_array_equal(d.particle_xy[0, :npi, 0].numpy(), events["p_x"][psl])
        np.testing.assert_array_equal(d.particle_xy[0, :npi, 1].numpy(), events["p_y"][psl])
        assert (d.particle_energy[0, npi:] == 0).all() and (d.particle_pdg[0, npi:] == 0).all()
        assert d.event_id.tolist() == [int(events["event"][i])]
        assert d.weight.tolist() == [1.0]
        # truth fractions: sum to 1 on signal hits, 0 on noise
        sums = d.y.sum(1)
        torch.testing.assert_close(sums[~d.noise], torch.ones(int((~d.noise).sum())))
        assert (sums[d.noise] == 0).all()


def test_chunking_does_not_change_result(calo_file: Path) -> None:
    whole, _ = read_data(calo_file)
    chunked, summary = read_data(calo_file, step_size=3)
    assert len(whole) == len(chunked) == summary.events_kept
    for a, b in zip(whole, chunked, strict=True):
        for key in ("x", "pos", "energy", "y", "noise", "layer", "particle_energy", "event_id"):
            assert torch.equal(a[key], b[key]), key


def test_iterate_events_reports_entry_ranges(calo_file: Path, events: dict) -> None:
    chunks = list(iterate_events(calo_file, step_size=7, report=True))
    infos = [info for _, info in chunks]
    assert all(isinstance(i, ChunkInfo) for i in infos)
    assert [i.entry_start for i in infos] == list(range(0, len(events["counts"]), 7))
    total = sum(len(a) for a, _ in chunks)
    assert total == len(events["counts"])
    assert ak.to_list(ak.num(chunks[0][0]["hit_x"])) == events["counts"][:7].tolist()


def test_foreign_tree_with_truth_index_and_constants(tmp_path: Path, rng) -> None:
    """Other branch names, truth as a particle index, constant cell sizes, weight branch."""
    ev = make_events(rng, n_events=12, k=3)
    c = ev["counts"]
    # separate counters per branch, as other tools write them
    p = write_tree(
        tmp_path / "foreign.root",
        {
            "rechit_x": jag(ev["x"], c),
            "rechit_y": jag(ev["y"], c),
            "rechit_z": jag(ev["z"], c),
            "rechit_energy": jag(ev["energy"], c),
            "rechit_pid": jag(ev["truth"], c),
            "evt_weight": np.linspace(0.5, 2.0, len(c)).astype(np.float32),
        },
        tree="hits",
    )
    schema = Schema(
        tree="hits",
        x="rechit_x",
        y="rechit_y",
        z="rechit_z",
        energy="rechit_energy",
        cell_size=(2.0, 8.0, 0.3),
        truth_index="rechit_pid",
        weight="evt_weight",
    )
    data, summary = read_data(p, schema)
    assert summary.events_kept == 12
    k = int(ev["truth"].max()) + 1
    for i, (d, t) in enumerate(zip(data, _split(ev["truth"], c), strict=True)):
        onehot = np.zeros((len(t), k), np.float32)
        onehot[t >= 0, t[t >= 0]] = 1.0
        np.testing.assert_array_equal(d.y.numpy(), onehot)
        np.testing.assert_array_equal(d.noise.numpy(), t < 0)
        np.testing.assert_allclose(d.x[:, 3].numpy(), 4.0)  # sqrt(2 * 8)
        np.testing.assert_allclose(d.x[:, 4].numpy(), 0.3)
        assert (d.layer == 0).all()
        assert d.event_id.tolist() == [i]  # entry number
        assert d.weight.item() == pytest.approx(np.linspace(0.5, 2.0, 12)[i])
        assert d.particle_energy.shape == (1, k)


def test_fraction_list_and_glob_sorting(tmp_path: Path, rng) -> None:
    ev = make_events(rng, n_events=5, k=11, hits=(20, 30))
    p = write_calo_tree(tmp_path / "k11.root", ev)
    data, _ = read_data(p)  # glob hit_frac_* must order 0, 1, ..., 10 (not 0, 1, 10, 2)
    np.testing.assert_array_equal(torch.cat([d.y for d in data]).numpy(), ev["frac"])
    names = [f"hit_frac_{j}" for j in (3, 0)]
    data2, _ = read_data(p, Schema.calo(truth_fractions=names), n_particles=11)
    np.testing.assert_array_equal(
        data2[0].y[:, :2].numpy(), ev["frac"][: ev["counts"][0]][:, [3, 0]]
    )


def test_k_harmonised_across_files_and_glob_paths(tmp_path: Path, rng) -> None:
    write_calo_tree(tmp_path / "a.root", make_events(rng, n_events=4, k=2))
    write_calo_tree(tmp_path / "b.root", make_events(rng, n_events=3, k=3))
    data, summary = read_data(str(tmp_path / "*.root"))
    assert len(summary.files) == 2 and len(data) == 7
    assert {d.y.shape[1] for d in data} == {3}
    assert {tuple(d.particle_xy.shape) for d in data} == {(1, 3, 2)}
    assert all((d.y[:, 2] == 0).all() for d in data[:4])


def test_max_events_counts_only_what_was_read(calo_file: Path, events: dict) -> None:
    data, summary = read_data(calo_file, max_events=5, step_size=3)
    assert len(data) == 5 and summary.events_read == 5 and summary.events_kept == 5
    assert summary.hits_read == events["counts"][:5].sum()
    assert [d.event_id.item() for d in data] == events["event"][:5].tolist()


def test_custom_features_and_time(tmp_path: Path, rng) -> None:
    ev = make_events(rng, n_events=4)
    c = ev["counts"]
    t = rng.normal(0, 1, c.sum()).astype(np.float32)
    p = write_tree(
        tmp_path / "t.root",
        {
            "hit": ak.zip(
                {
                    "x": jag(ev["x"], c),
                    "y": jag(ev["y"], c),
                    "z": jag(ev["z"], c),
                    "energy": jag(ev["energy"], c),
                    "t": jag(t, c),
                    "truth": jag(ev["truth"], c),
                }
            )
        },
    )
    schema = Schema(
        x="hit_x", y="hit_y", z="hit_z", energy="hit_energy", time="hit_t", truth_index="hit_truth"
    )
    spec = FeatureSpec(("energy", "time"))
    data, _ = read_data(p, schema, features=spec)
    x = torch.cat([d.x for d in data]).numpy()
    np.testing.assert_array_equal(x[:, 0], ev["energy"])
    np.testing.assert_array_equal(x[:, 1], t)


def test_schema_from_yaml(tmp_path: Path) -> None:
    y = tmp_path / "schema.yaml"
    y.write_text(
        "tree: hits\nx: rechit_x\ny: y\nz: z\nenergy: e\ntruth_fractions: null\ntruth_index: pid\ncell_size: [1, 2, 3]\n"
    )
    s = Schema.from_yaml(y, overrides=["noise=null"])
    assert (s.tree, s.x, s.truth_fractions, s.truth_index) == ("hits", "rechit_x", None, "pid")
    assert s.cell_size == (1.0, 2.0, 3.0) and s.noise is None
    y.write_text("preset: calo\ntruth_fractions: [f0, f1]\n")
    assert Schema.from_yaml(y).truth_fractions == ["f0", "f1"]


def test_iter_data_streams_the_same_events(calo_file: Path) -> None:
    from calo.io import ReadSummary, iter_data

    whole, s_whole = read_data(calo_file, max_hits=12)
    s = ReadSummary()
    stream = iter_data(calo_file, summary=s, step_size=4, max_hits=12)
    first = next(stream)
    assert s.events_read == 4  # only the first chunk has been read so far
    rest = list(stream)
    assert len(rest) + 1 == len(whole)
    for a, b in zip([first, *rest], whole, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert s.to_dict() == s_whole.to_dict()


def test_fast_data_constructor_matches_public(calo_file: Path) -> None:
    from torch_geometric.data import Batch, Data

    data, _ = read_data(calo_file, max_events=3)
    public = [Data(**{k: d[k] for k in d.keys()}) for d in data]
    a, b = Batch.from_data_list(data), Batch.from_data_list(public)
    assert sorted(a.keys()) == sorted(b.keys()) and len(data[0].keys()) == 13
    for key in b.keys():
        assert torch.equal(a[key], b[key]), key
    assert [d.num_nodes for d in data] == [d.num_nodes for d in public]


def test_truth_index_used_when_fraction_glob_matches_nothing(calo_file: Path) -> None:
    by_index, _ = read_data(
        calo_file, Schema.calo(truth_fractions="nothing_*", truth_index="hit_truth")
    )
    by_frac, _ = read_data(calo_file, Schema.calo(truth_index="hit_truth"))  # both
    n_shared = 0
    for a, b in zip(by_index, by_frac, strict=True):
        sig = ~b.noise
        onehot = torch.zeros_like(b.y)
        onehot[sig, b.y[sig].argmax(1)] = 1.0
        assert torch.equal(a.y, onehot)
        n_shared += int(((b.y > 0) & (b.y < 1)).any(1).sum())
    assert n_shared > 0  # the fraction branches (not one-hot) were read in by_frac


def test_entry_and_status_record_every_entry_of_a_chunk() -> None:
    import awkward as ak
    import numpy as np

    from calo.io import STATUS_CODES, ChunkInfo, chunk_to_data

    arr = ak.Array(
        {
            "hit_x": [[0.0], [], [1.0], [float("nan")], [2.0]],
            "hit_y": [[0.0], [], [0.0], [0.0], [0.0]],
            "hit_z": [[0.0], [], [0.0], [0.0], [0.0]],
            "hit_energy": [[1.0], [], [-1.0], [1.0], [1.0]],
        }
    )
    s = Schema(x="hit_x", y="hit_y", z="hit_z", energy="hit_energy")
    status = np.full(5, 99, dtype=np.int64)
    out = chunk_to_data(arr, ChunkInfo("mem", "events", 10, 15), s, status=status)
    assert [int(d.entry) for d in out] == [10, 14]
    codes = [0, STATUS_CODES["empty"], STATUS_CODES["negative_energy"], STATUS_CODES["nonfinite"]]
    assert status.tolist() == [*codes, 0]
    status = np.zeros(5, dtype=np.int64)
    out = chunk_to_data(arr, ChunkInfo("mem", "events", 0, 5), s, status=status, limit=1)
    assert len(out) == 1 and status.tolist() == [0, -1, -1, -1, -1]
