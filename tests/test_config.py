"""Tests for calo.config: YAML loading, overrides, and errors on unknown keys or bad values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from calo.config import apply_overrides, from_dict, load_yaml, save_yaml, to_dict
from calo.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    sizes: tuple[int, ...] = (4, 8)


@dataclass
class Outer:
    name: str = "run"
    epochs: int = 3
    kind: Literal["a", "b"] = "a"
    flag: bool = False
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_overrides_nested_and_typed():
    cfg = apply_overrides(
        Outer(), ["inner.lr=0.5", "epochs=7", "flag=true", "inner.sizes=[1,2,3]", "limit=null"]
    )
    assert cfg.inner.lr == 0.5
    assert cfg.epochs == 7
    assert cfg.flag is True
    assert cfg.inner.sizes == (1, 2, 3)
    assert cfg.limit is None


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown configuration key.*inner\.lrr.*inner\.lr"):
        apply_overrides(Outer(), ["inner.lrr=1"])


@pytest.mark.parametrize(
    "override",
    ["epochs=abc", "epochs=1.5", "kind=c", "flag=maybe", "inner.lr=fast", "limit=none"],
)
def test_invalid_values(override):
    """One line that names the key and the value (OmegaConf's own errors span several)."""
    key, value = override.split("=")
    with pytest.raises(ConfigError, match="invalid value") as err:
        apply_overrides(Outer(), [override])
    assert "\n" not in str(err.value)
    assert repr(key) in str(err.value) and value in str(err.value)


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Outer(), ["epochs"])


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(Outer(), ["name=x", "inner.lr=0.25"])
    path = save_yaml(cfg, tmp_path / "cfg.yaml")
    back = load_yaml(Outer, path, overrides=["epochs=9"])
    assert back.name == "x" and back.inner.lr == 0.25 and back.epochs == 9
    assert to_dict(from_dict(Outer, to_dict(back))) == to_dict(back)


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(Outer, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(Outer, bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Outer, broken)


@dataclass
class Typed:
    """The field types the package's configurations use, as OmegaConf checks them."""

    devices: int | str = "auto"
    fractions: str | list[str] | None = "hit_frac_*"
    cell: tuple[float, float, float] = (1.0, 1.0, 1.0)
    out: Path = Path("runs/a")
    files: list[str] = field(default_factory=list)
    tag: str = "x"


def test_field_types():
    cfg = apply_overrides(
        Typed(), ["devices=2", "fractions=[a,b]", "cell=[1,2,3]", "out=runs/b", "files=[f.root]"]
    )
    assert cfg.devices == 2 and cfg.fractions == ["a", "b"] and cfg.cell == (1.0, 2.0, 3.0)
    assert cfg.out == Path("runs/b") and cfg.files == ["f.root"]
    cfg = apply_overrides(cfg, ["devices=auto", "fractions=null", "tag="])
    assert cfg.devices == "auto" and cfg.fractions is None and cfg.tag == ""
    assert to_dict(cfg)["out"] == "runs/b" and to_dict(cfg)["cell"] == [1.0, 2.0, 3.0]
    assert from_dict(Typed, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("files=f.root", ["'files'", "[a,b]", "f.root"]),
        ("cell=[1,2]", ["'cell=[1,2]'", "length 2"]),
        ("devices=[1]", ["'devices'", "[1]"]),
        ("cell=[1,x,3]", ["'cell=[1,x,3]'", "'x'"]),
        ("files=[a", ["'files=[a'"]),
    ],
)
def test_type_errors_are_one_line_and_name_the_key(override, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Typed(), [override])
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_unknown_nested_section():
    with pytest.raises(ConfigError, match=r"unknown configuration key.*'inner\.x'.*inner\.lr"):
        apply_overrides(Outer(), ["inner.x.y=1"])
    with pytest.raises(ConfigError, match=r"unknown configuration key.*'other'.*'epochs'"):
        from_dict(Outer, {"other": {"a": 1}})


def test_to_dict_refuses_values_yaml_cannot_hold():
    cfg = Outer()
    cfg.epochs = np.int64(3)
    with pytest.raises(ConfigError, match="cannot be written"):
        to_dict(cfg)
