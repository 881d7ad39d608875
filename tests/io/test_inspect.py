"""calo-inspect: the listing, the guessed schema YAML that reads the file, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from iotrees import foreign_schema, make_events, write_calo_tree, write_foreign_file

from calo.__main__ import main as calo_main
from calo.errors import DataError
from calo.io import Schema, read_data
from calo.io.cli import main
from calo.io.inspect import inspect_file


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_foreign_file(tmp_path_factory.mktemp("ins") / "f.root", n_events=8, seed=1)


def test_listing_of_a_foreign_rntuple(foreign: Path) -> None:
    ins = inspect_file(foreign)
    assert (ins.tree, ins.format, ins.entries) == ("events", "RNTuple", 8)
    scope = {r.info.name: (r.scope, r.info.dtype, r.role) for r in ins.rows}
    assert scope["rechit_x"] == ("per-hit jagged", "float32", "x")
    assert scope["rechit_pid"] == ("per-hit jagged", "int32", "truth_index")
    assert scope["gen_energy1"] == ("per-event scalar", "float32", "particle_energy")
    assert ins.guess["particle_energy"] == "gen_energy*"
    assert ins.guess["particle_pdg"] == "gen_pdg*"
    text = ins.report()
    assert "events               RNTuple  8 entries" in text
    assert "gen_energy0    per-event scalar float32" in text


def test_written_schema_reads_the_file_once_units_are_set(
    foreign: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "schema.yaml"
    assert main([str(foreign), "--write-schema", str(out)]) == 0
    said = capsys.readouterr().out
    assert "tried it: 5 of the first events read (2 truth columns)" in said
    text = out.read_text()
    assert "energy_unit: GeV" in text and "# UNITS: check them" in text
    assert "# energy: per-hit energy, in energy_unit" in text
    assert "cell_size_by_layer" in text  # the options are shown, commented out
    s = Schema.from_yaml(out, ["energy_unit=MeV"])
    assert s == foreign_schema(cell_size_by_layer=None)
    a, _ = read_data(foreign, s)
    b, _ = read_data(foreign, foreign_schema(cell_size_by_layer=None))
    assert all(torch.equal(x.energy, y.energy) for x, y in zip(a, b, strict=True))


def test_calo_file_and_per_particle_branches(tmp_path: Path, rng) -> None:
    p = write_calo_tree(tmp_path / "c.root", make_events(rng, n_events=5))
    ins = inspect_file(p)
    scope = {r.info.name: r.scope for r in ins.rows}
    assert scope["hit_frac_0"] == "per-hit jagged" and scope["nhit"] == "per-event scalar"
    assert scope["particle_energy"] == "per-particle jagged"
    assert ins.guess["truth_fractions"] == "hit_frac_*"
    assert "'preset: calo' alone says the same" in ins.schema_yaml()
    out = tmp_path / "c.yaml"
    out.write_text(ins.schema_yaml())
    s = Schema.from_yaml(out)
    for key in ("x", "dx", "layer", "noise", "truth_fractions", "event_id", "particle_pdg"):
        assert getattr(s, key) == getattr(Schema.calo(), key), key
    data, _ = read_data(p, s)
    ref, _ = read_data(p)
    assert all(
        torch.equal(a.y, b.y) and torch.equal(a.x, b.x) for a, b in zip(data, ref, strict=True)
    )


def test_ttree_choice_and_errors(tmp_path: Path, capsys) -> None:
    p = write_foreign_file(tmp_path / "t.root", n_events=3, fmt="ttree", tree="hits")
    assert inspect_file(p).tree == "hits"  # the only tree
    with pytest.raises(DataError, match=r"tree 'events' not found; the file has TTrees \['hits'\]"):
        inspect_file(p, "events")
    bad = tmp_path / "bad.root"
    bad.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    assert main([str(bad)]) == 2
    assert "not ROOT, truncated or corrupt" in capsys.readouterr().err
    assert main([str(tmp_path / "none.root")]) == 2
    assert "file does not exist" in capsys.readouterr().err
    assert calo_main(["inspect", str(p), "--tree", "hits"]) == 0
    assert "TTree 'hits': 3 entries" in capsys.readouterr().out
