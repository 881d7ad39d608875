"""Every kind of bad input has a defined behaviour: a DataError that names the place, or a
counted skip."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
from iotrees import jag, make_events, write_calo_tree, write_tree

from calo.errors import ConfigError, DataError
from calo.io import HitDataset, Schema, read_data

BARE = {
    "x": "hit_x",
    "y": "hit_y",
    "z": "hit_z",
    "energy": "hit_energy",
    "truth_index": "hit_truth",
}


def _bare_file(path: Path, energy: list, x: list | None = None) -> Path:
    """A minimal tree: hit_x/y/z/energy/truth, values given per event."""
    e = ak.Array(energy)
    xs = ak.Array(x) if x is not None else ak.zeros_like(e)
    hit = ak.zip(
        {
            "x": ak.values_astype(xs, np.float32),
            "y": ak.values_astype(ak.zeros_like(e), np.float32),
            "z": ak.values_astype(ak.zeros_like(e), np.float32),
            "energy": ak.values_astype(e, np.float32),
            "truth": ak.values_astype(ak.zeros_like(e), np.int32),
        }
    )
    return write_tree(path, {"hit": hit})


# -- files -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.root"
    with pytest.raises(DataError, match="does not exist") as err:
        read_data(p)
    assert err.value.where["file"] == str(p)


def test_glob_that_matches_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file matches"):
        read_data(str(tmp_path / "*.root"))


def test_not_a_root_file(tmp_path: Path) -> None:
    p = tmp_path / "text.root"
    p.write_text("this is not a ROOT file\n" * 20)
    with pytest.raises(DataError, match="not ROOT") as err:
        read_data(p)
    assert err.value.where["file"] == str(p)


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_root_file(tmp_path: Path, calo_file: Path, keep: float) -> None:
    raw = calo_file.read_bytes()
    p = tmp_path / "truncated.root"
    p.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        read_data(p)
    assert err.value.where["file"] == str(p)


def test_corrupt_baskets(tmp_path: Path, rng) -> None:
    src = write_calo_tree(tmp_path / "good.root", make_events(rng, n_events=200))
    raw = bytearray(src.read_bytes())
    i = len(raw) // 2
    raw[i : i + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    p = tmp_path / "corrupt.root"
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        read_data(p)
    assert err.value.where["file"] == str(p)
    assert err.value.where["tree"] == "events" and err.value.where["entry"] == 0


# -- trees and branches ----------------------------------------------------------------------


def test_missing_tree_lists_trees(calo_file: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"tree 'hits' not found; the file has TTrees \['events'\] and RNTuples \[\]",
    ):
        read_data(calo_file, Schema.calo(tree="hits"))


def test_object_that_is_no_tree_is_refused_with_the_trees_listed(tmp_path: Path) -> None:
    p = tmp_path / "hist.root"
    with uproot.recreate(p) as f:
        f["h"] = np.histogram(np.arange(3.0), bins=2)
        f["rnt"] = {"a": np.zeros(2)}
        f.mktree("tt", {"b": "float32"})
    with pytest.raises(DataError, match=r"is a TH1D, not a TTree or RNTuple") as err:
        read_data(p, Schema.calo(tree="h"))
    assert "TTrees ['tt']" in str(err.value) and "RNTuples ['rnt']" in str(err.value)
    assert "--schema FILE.yaml (key tree:)" in str(err.value)


def test_rntuple_of_records_gets_advice(tmp_path: Path) -> None:
    p = tmp_path / "rnt.root"
    with uproot.recreate(p) as f:
        f["events"] = {"hit": ak.zip({"x": ak.Array([[1.0]])})}
    with pytest.raises(DataError, match=r"branch 'hit_x' not found.*\['hit'\] are records"):
        read_data(p)


def test_missing_branch_lists_branches(calo_file: Path) -> None:
    with pytest.raises(DataError, match="branch 'hit_t' not found") as err:
        read_data(calo_file, Schema.calo(time="hit_t"))
    assert "'hit_energy'" in str(err.value) and err.value.where["branch"] == "hit_t"
    assert err.value.where["tree"] == "events"


def test_missing_truth(tmp_path: Path, calo_file: Path) -> None:
    with pytest.raises(DataError, match="no truth branches"):
        read_data(calo_file, Schema.calo(truth_fractions="truth_*"))
    with pytest.raises(DataError, match=r"truth fraction branch\(es\) \['f9'\] not found"):
        read_data(calo_file, Schema.calo(truth_fractions=["hit_frac_0", "f9"]))
    data, _ = read_data(calo_file, Schema.calo(truth_fractions="truth_*"), require_truth=False)
    assert data[0].y.shape[1] == 2  # K still from the particle branches, all zero
    assert float(sum(d.y.sum() for d in data)) == 0.0


def test_jagged_lengths_disagree(tmp_path: Path) -> None:
    x = ak.Array([[1.0, 2.0], [3.0], [4.0, 5.0]])
    p = write_tree(
        tmp_path / "bad.root",
        {
            "hit_x": x,
            "hit_y": x,
            "hit_z": x,
            "hit_energy": ak.Array([[1.0, 2.0], [3.0], [4.0]]),  # entry 2 is short
            "hit_truth": ak.Array([[0, 0], [0], [0, 0]]),
        },
    )
    with pytest.raises(DataError, match="'hit_x' and 'hit_energy' have different lengths") as err:
        read_data(p, Schema(**BARE))
    assert err.value.where["entry"] == 2 and err.value.where["branch"] == "hit_energy"


def test_particle_lengths_disagree(tmp_path: Path) -> None:
    e = ak.Array([[1.0], [2.0]])
    p = write_tree(
        tmp_path / "badp.root",
        {
            "hit_x": e, "hit_y": e, "hit_z": e, "hit_energy": e,
            "hit_truth": ak.Array([[0], [0]]),
            "particle_energy": ak.Array([[10.0], [20.0]]),
            "particle_pdg": ak.Array([[11], [11, 22]]),
        },
    )  # fmt: skip
    schema = Schema(
        **{**BARE, "particle_energy": "particle_energy", "particle_pdg": "particle_pdg"}
    )
    with pytest.raises(DataError, match="particle branches") as err:
        read_data(p, schema)
    assert err.value.where["entry"] == 1


def test_n_particles_too_small(calo_file: Path) -> None:
    with pytest.raises(DataError, match="n_particles=1"):
        read_data(calo_file, n_particles=1)
    data, _ = read_data(calo_file, n_particles=4)
    assert data[0].y.shape[1] == 4 and data[0].particle_pdg.shape == (1, 4)


# -- bad events ------------------------------------------------------------------------------


def test_nonfinite_skip_and_count(tmp_path: Path) -> None:
    p = _bare_file(
        tmp_path / "nan.root", [[1.0, 2.0], [1.0], [3.0]], x=[[0, 0], [np.nan], [np.inf]]
    )
    data, s = read_data(p, Schema(**BARE))
    assert len(data) == 1 and data[0].energy.tolist() == [1.0, 2.0]
    assert s.skipped == {"nonfinite": 2} and s.events_read == 3 and s.events_kept == 1
    assert s.examples["nonfinite"] == [(str(p), 1), (str(p), 2)]
    assert "skipped 2 (NaN or infinite value)" in str(s) and "entry 1" in str(s)


def test_nonfinite_error(tmp_path: Path) -> None:
    p = _bare_file(tmp_path / "nan.root", [[1.0, 2.0], [1.0, np.nan]])
    with pytest.raises(DataError, match="NaN or infinite") as err:
        read_data(p, Schema(**BARE), on_nonfinite="error")
    assert err.value.where == {
        "file": str(p),
        "tree": "events",
        "branch": "hit_energy",
        "entry": 1,
    }


def test_negative_energy_policies(tmp_path: Path) -> None:
    p = _bare_file(tmp_path / "neg.root", [[1.0, -0.5], [2.0], [-1.0, 3.0, -2.0]])
    data, s = read_data(p, Schema(**BARE))
    assert [d.energy.tolist() for d in data] == [[2.0]]
    assert s.skipped == {"negative_energy": 2} and s.examples["negative_energy"][0][1] == 0

    data, s = read_data(p, Schema(**BARE), on_negative_energy="clip")
    assert [d.energy.tolist() for d in data] == [[1.0, 0.0], [2.0], [0.0, 3.0, 0.0]]
    assert s.hits_clipped == 3 and s.n_skipped == 0 and "clipped 3" in str(s)
    assert data[0].x[1, 5].item() == 0.0  # log(E+1) of the clipped energy

    with pytest.raises(DataError, match="negative hit energy") as err:
        read_data(p, Schema(**BARE), on_negative_energy="error")
    assert err.value.where["entry"] == 0 and err.value.where["branch"] == "hit_energy"


def test_empty_events_skipped_and_counted(tmp_path: Path) -> None:
    p = _bare_file(tmp_path / "empty.root", [[], [1.0], [], []])
    data, s = read_data(p, Schema(**BARE))
    assert len(data) == 1 and s.skipped == {"empty": 3} and s.events_read == 4
    assert [e for _, e in s.examples["empty"]] == [0, 2, 3]
    assert data[0].event_id.tolist() == [1]


def test_too_many_hits_truncate_keeps_most_energetic(tmp_path: Path) -> None:
    p = _bare_file(
        tmp_path / "big.root",
        [[0.1, 5.0, 0.3, 4.0, 0.2], [1.0, 2.0]],
        x=[[0, 1, 2, 3, 4], [0, 1]],
    )
    data, s = read_data(p, Schema(**BARE), max_hits=3)
    # the 3 most energetic hits, in stored order
    assert data[0].energy.tolist() == pytest.approx([5.0, 0.3, 4.0])
    assert data[0].pos[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert data[1].energy.tolist() == [1.0, 2.0]
    assert s.events_truncated == 1 and s.hits_dropped == 2 and s.hits_kept == 5
    assert "truncated 1 events" in str(s)


def test_too_many_hits_skip_and_error(tmp_path: Path) -> None:
    p = _bare_file(tmp_path / "big.root", [[1.0, 2.0, 3.0], [1.0], [1.0, 1.0, 1.0, 1.0]])
    data, s = read_data(p, Schema(**BARE), max_hits=2, on_too_many_hits="skip")
    assert len(data) == 1 and s.skipped == {"too_many_hits": 2}
    with pytest.raises(DataError, match="more than max_hits=2") as err:
        read_data(p, Schema(**BARE), max_hits=2, on_too_many_hits="error")
    assert err.value.where["entry"] == 0


def test_first_reason_wins_and_counts_add_up(tmp_path: Path, rng) -> None:
    ev = make_events(rng, n_events=30)
    ev["energy"][:3] = -1.0  # event 0 (first hits)
    ev["x"][ev["counts"][:5].sum()] = np.nan  # first hit of event 5
    p = write_calo_tree(tmp_path / "mixed.root", ev)
    data, s = read_data(p)
    assert s.skipped == {"negative_energy": 1, "nonfinite": 1}
    assert s.events_kept + s.n_skipped == s.events_read == 30 == len(data) + 2
    assert 5 not in [d.event_id.item() - 1000 for d in data]


def test_bad_policy_values() -> None:
    with pytest.raises(ConfigError, match="on_nonfinite"):
        read_data([], on_nonfinite="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_hits must be positive"):
        read_data([], max_hits=0)
    with pytest.raises(ConfigError, match="unknown HitDataset option"):
        HitDataset([], bogus=1)


def test_cli_style_message(tmp_path: Path) -> None:
    """The message names file, tree, branch and entry in one line for the CLI."""
    x = jag(np.ones(3, np.float32), np.array([1, 2]))
    p = write_tree(
        tmp_path / "m.root",
        {"hit_x": x, "hit_y": x, "hit_z": x, "hit_energy": x, "hit_truth": ak.Array([[0], [0]])},
    )
    with pytest.raises(DataError) as err:
        read_data(p, Schema(**BARE))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.endswith(f"[file {p}, tree events, branch hit_truth, entry 1]")


def test_tree_without_entries(tmp_path: Path) -> None:
    p = tmp_path / "none.root"
    with uproot.recreate(p) as f:
        f.mktree(
            "events",
            {n: "var * float32" for n in ("hit_x", "hit_y", "hit_z", "hit_energy")}
            | {"hit_truth": "var * int32"},
        )
    data, s = read_data(p, Schema(**BARE))
    assert data == [] and s.events_read == 0 and s.files == [str(p)]
    assert str(s).startswith("read 0 events (0 hits) from 1 file")


# -- branches that do not fit their role (checked from the types, before reading) -----------


def _typed_file(path: Path, **extra: object) -> Path:
    """hit_x/y/z/energy/truth (2 events) plus the ``extra`` branches."""
    e = ak.Array([[1.0, 2.0], [3.0]])
    base = {
        "hit_x": e,
        "hit_y": e,
        "hit_z": e,
        "hit_energy": e,
        "hit_truth": ak.Array([[0, 0], [0]]),
    }
    return write_tree(path, {**base, **extra})


def test_boolean_branch_for_energy(tmp_path: Path) -> None:
    p = _typed_file(tmp_path / "b.root", hit_on=ak.Array([[True, False], [True]]))
    with pytest.raises(
        DataError, match=r"'hit_on' given for energy is boolean \(var \* bool\)"
    ) as err:
        read_data(p, Schema(**{**BARE, "energy": "hit_on"}))
    assert err.value.where == {"file": str(p), "tree": "events", "branch": "hit_on"}
    with pytest.raises(DataError, match="given for layer is boolean"):
        read_data(p, Schema(**BARE, layer="hit_on"))
    data, _ = read_data(p, Schema(**BARE, noise="hit_on"))  # a flag may be boolean
    assert data[0].noise.tolist() == [True, False]


def test_float_layer_and_index_must_be_whole(tmp_path: Path) -> None:
    p = _typed_file(
        tmp_path / "f.root",
        hit_lf=ak.Array([[1.0, 2.0], [3.0]]),
        hit_lbad=ak.Array([[1.0, 2.0], [3.5]]),
        hit_tf=ak.Array([[0.0, -1.0], [0.0]]),
        hit_tbad=ak.Array([[0.0, 0.2], [0.0]]),
    )
    data, _ = read_data(p, Schema(**{**BARE, "layer": "hit_lf", "truth_index": "hit_tf"}))
    assert data[0].layer.dtype == torch.int64 and data[1].layer.tolist() == [3]
    assert data[0].hit_particle.tolist() == [0, -1] and data[0].y.tolist() == [[1.0], [0.0]]
    with pytest.raises(DataError, match=r"value 3\.5, not a whole number") as err:
        read_data(p, Schema(**BARE, layer="hit_lbad"))
    assert err.value.where["entry"] == 1 and err.value.where["branch"] == "hit_lbad"
    with pytest.raises(DataError, match=r"'hit_tbad' given for truth_index .* 0\.2") as err:
        read_data(p, Schema(**{**BARE, "truth_index": "hit_tbad"}))
    assert err.value.where["entry"] == 0


def test_float_particle_index_does_not_make_121_showers(tmp_path: Path) -> None:
    """A float branch (here energies) given as the particle index is refused, not one-hot
    encoded into as many columns as its largest value."""
    p = _typed_file(tmp_path / "pidf.root", hit_e2=ak.Array([[120.3, 2.0], [3.0]]))
    with pytest.raises(DataError, match=r"value 120\.3.*not a whole number"):
        read_data(p, Schema(**{**BARE, "truth_index": "hit_e2"}))


@pytest.mark.parametrize(
    ("values", "match", "entry"),
    [
        ([[0.5, 7.5], [1.0]], r"truth fraction 7\.5 is outside \[0, 1\]", 0),
        ([[0.5, 0.5], [-0.2]], r"truth fraction -0\.2.* is outside \[0, 1\]", 1),
    ],
)
def test_fractions_outside_0_1(tmp_path: Path, values: list, match: str, entry: int) -> None:
    p = _typed_file(tmp_path / "fr.root", hit_f0=ak.Array(values))
    with pytest.raises(DataError, match=match) as err:
        read_data(p, Schema(**{**BARE, "truth_index": None, "truth_fractions": "hit_f*"}))
    assert err.value.where["branch"] == "hit_f0" and err.value.where["entry"] == entry


def test_fraction_sum_above_one_and_rounding_tolerated(tmp_path: Path) -> None:
    f0 = ak.Array([[1.0, 0.5], [0.7]])
    p = _typed_file(tmp_path / "s.root", hit_f0=f0, hit_f1=ak.Array([[0.0, 0.5], [0.6]]))
    s = Schema(**{**BARE, "truth_index": None, "truth_fractions": "hit_f*"})
    with pytest.raises(DataError, match=r"sum to 1\.3, more than 1") as err:
        read_data(p, s)
    assert err.value.where["entry"] == 1
    q = _typed_file(
        tmp_path / "ok.root",
        hit_f0=ak.Array([[1.000001, 0.5], [0.4]]),
        hit_f1=ak.Array([[-1e-7, 0.500004], [0.6]]),
    )
    data, _ = read_data(q, s)  # float rounding: clipped into [0, 1]
    assert data[0].y[0].tolist() == [1.0, 0.0]


def test_per_event_branch_for_a_per_hit_role(tmp_path: Path) -> None:
    p = _typed_file(tmp_path / "ev.root", evt_energy=np.array([1.0, 2.0]))
    with pytest.raises(
        DataError, match=r"'evt_energy' given for energy is per-event \(float64"
    ) as err:
        read_data(p, Schema(**{**BARE, "energy": "evt_energy"}))
    assert "name a per-hit (jagged) branch" in str(err.value)
    assert "--schema FILE.yaml (key energy:)" in str(err.value)


def test_jagged_branch_for_a_per_event_role(tmp_path: Path) -> None:
    p = _typed_file(tmp_path / "w.root")
    for role in ("weight", "event_id"):
        with pytest.raises(DataError, match=rf"'hit_energy' given for {role} is jagged") as err:
            read_data(p, Schema(**BARE, **{role: "hit_energy"}))
        assert "name a per-event scalar branch" in str(err.value)
        assert err.value.where["branch"] == "hit_energy"


def test_string_branch_as_weight(tmp_path: Path) -> None:
    p = _typed_file(tmp_path / "str.root", tag=ak.Array(["a", "bb"]))
    with pytest.raises(
        DataError, match=r"'tag' given for weight holds string \(string\), not numbers"
    ):
        read_data(p, Schema(**BARE, weight="tag"))
    with pytest.raises(DataError, match="given for x holds"):
        read_data(p, Schema(**{**BARE, "x": "tag"}))


def test_particle_branches_in_mixed_forms(tmp_path: Path) -> None:
    p = _typed_file(
        tmp_path / "mix.root", gen_e0=np.array([1.0, 2.0]), p_pdg=ak.Array([[11], [22]])
    )
    with pytest.raises(DataError, match=r"particle roles \['pdg'\] are jagged .* \['energy'\]"):
        read_data(p, Schema(**BARE, particle_energy="gen_e*", particle_pdg="p_pdg"))
    with pytest.raises(DataError, match="particle_energy pattern 'true_e\\*' matches no branch"):
        read_data(p, Schema(**BARE, particle_energy="true_e*"))
    with pytest.raises(DataError, match="'p_pdg' given for energy is jagged"):
        read_data(p, Schema(**BARE, particle_energy=["gen_e0", "p_pdg"]))


def test_float_event_id_and_pdg(tmp_path: Path) -> None:
    p = _typed_file(
        tmp_path / "ids.root",
        evt=np.array([7.0, 8.0]),
        gen_pdg0=np.array([11.0, 22.0]),
        gen_pdg1=np.array([211.0, 22.5]),
    )
    data, _ = read_data(p, Schema(**BARE, event_id="evt", particle_pdg="gen_pdg0"))
    assert [d.event_id.tolist() for d in data] == [[7], [8]]
    assert data[1].particle_pdg.tolist() == [[22]]
    with pytest.raises(DataError, match=r"given for particle_pdg .* 22\.5") as err:
        read_data(p, Schema(**BARE, particle_pdg="gen_pdg*"))
    assert err.value.where["entry"] == 1 and err.value.where["branch"] == "gen_pdg1"
