"""The Schema: presets, YAML round trip, units, cell-size options and their configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from calo.errors import ConfigError
from calo.io import ENERGY_UNITS, LENGTH_UNITS, Schema

MIN = {"x": "hx", "y": "hy", "z": "hz", "energy": "he"}


def test_a_schema_names_only_what_the_file_has() -> None:
    s = Schema(tree="t", **MIN)
    assert s.hit_branches() == {"x": "hx", "y": "hy", "z": "hz", "energy": "he"}
    assert s.particle_branches() == {} and s.event_branches() == {}
    assert s.truth_fractions is None and s.cell_size is None
    assert (s.energy_scale, s.length_scale) == (1.0, 1.0)


def test_x_y_z_energy_are_required_and_the_message_says_how() -> None:
    with pytest.raises(ConfigError, match=r"missing: z, energy") as err:
        Schema(x="a", y="b")
    assert "--schema FILE.yaml" in str(err.value) and "Schema.calo()" in str(err.value)


def test_calo_preset_is_the_simulate_layout_and_takes_overrides() -> None:
    c = Schema.calo()
    assert (c.tree, c.x, c.energy, c.layer, c.dx, c.noise, c.event_id) == (
        "events", "hit_x", "hit_energy", "hit_layer", "hit_dx", "hit_noise", "event"
    )  # fmt: skip
    assert c.truth_fractions == "hit_frac_*" and c.particle_pdg == "particle_pdg"
    assert Schema.calo(time="hit_t").time == "hit_t" and Schema.calo().time is None
    assert Schema.preset("calo") == c
    with pytest.raises(ConfigError, match=r"unknown schema preset 'cms'; choose one of \['calo'\]"):
        Schema.preset("cms")


def test_preset_yaml_round_trip(tmp_path: Path) -> None:
    for s in (
        Schema.calo(),
        Schema(**MIN, cell_size_by_layer={0: [1, 1, 0.5], 3: [2, 2, 1]}, layer="hl",
               particle_energy="gen_energy*", truth_fractions=["f0", "f1"], energy_unit="MeV",
               length_unit=0.1),
    ):  # fmt: skip
        p = tmp_path / "s.yaml"
        s.to_yaml(p)
        assert Schema.from_yaml(p) == s
        s.to_yaml(p, only_set=False)
        assert Schema.from_yaml(p) == s
        assert Schema.from_dict(s.to_dict()) == s


def test_yaml_preset_then_keys_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(
        "preset: calo\ntree: hits\nenergy_unit: MeV\ncell_size_by_layer:\n  0: [1, 1, 1]\n"
    )
    s = Schema.from_yaml(p, ["length_unit=mm", "noise=null"])
    assert (s.tree, s.x, s.energy_unit, s.length_unit, s.noise) == (
        "hits", "hit_x", "MeV", "mm", None
    )  # fmt: skip
    assert s.cell_size_by_layer == {0: [1.0, 1.0, 1.0]} and s.energy_scale == 1e-3
    p.write_text("preset: calo\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\) \['bogus'\]"):
        Schema.from_yaml(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        Schema.from_yaml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        Schema.from_yaml(tmp_path / "none.yaml")


@pytest.mark.parametrize(
    ("unit", "factor"),
    [*ENERGY_UNITS.items(), (0.5, 0.5), ("1e-3", 1e-3)],
)
def test_energy_units(unit: str | float, factor: float) -> None:
    assert Schema(**MIN, energy_unit=unit).energy_scale == factor


@pytest.mark.parametrize(("unit", "factor"), [*LENGTH_UNITS.items(), (2.54, 2.54)])
def test_length_units(unit: str | float, factor: float) -> None:
    assert Schema(**MIN, length_unit=unit).length_scale == factor


def test_unknown_unit_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown energy_unit 'Mev': choose one of \['eV'"):
        Schema(**MIN, energy_unit="Mev")
    with pytest.raises(ConfigError, match=r"unknown length_unit 'inch'.*'um', 'mm', 'cm', 'm'"):
        Schema(**MIN, length_unit="inch")
    with pytest.raises(ConfigError, match="must be positive"):
        Schema(**MIN, length_unit=-1.0)


def test_cell_size_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs the per-hit layer branch"):
        Schema(**MIN, cell_size_by_layer={0: [1, 1, 1]})
    with pytest.raises(ConfigError, match=r"cell_size_by_layer\[0\] must have 3 values"):
        Schema(**MIN, layer="l", cell_size_by_layer={0: [1, 1]})
    with pytest.raises(ConfigError, match="one source of cell sizes, not cell_size and"):
        Schema(**MIN, layer="l", cell_size=(1, 1, 1), cell_size_by_layer={0: [1, 1, 1]})
    with pytest.raises(ConfigError, match="cell_id needs a geometry file"):
        Schema(**MIN, cell_id="cid")
    with pytest.raises(ConfigError, match="cell_size must have 3 values"):
        Schema(**MIN, cell_size=(1.0, 2.0))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keys must be layer numbers"):
        Schema.from_dict({**MIN, "layer": "l", "cell_size_by_layer": {"front": [1, 1, 1]}})


def test_relative_geometry_path_is_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "s.yaml"
    p.write_text("x: a\ny: b\nz: c\nenergy: e\ngeometry: geo.csv\n")
    assert Schema.from_yaml(p).geometry == str((tmp_path / "sub" / "geo.csv").resolve())
