"""Tests for calo.config: YAML loading, overrides, and errors on unknown keys or bad values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
