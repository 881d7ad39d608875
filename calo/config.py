"""Configuration dataclasses: load from YAML, override from the command line, write back.

Every component has one dataclass. :func:`from_dict` builds (possibly nested) dataclasses
from a mapping and rejects unknown keys and values of the wrong type; :func:`apply_overrides`
applies ``key.sub=value`` strings as given on a command line; :func:`to_dict` and
:func:`save_yaml` write the resolved configuration next to a result.

Examples
--------
>>> from dataclasses import dataclass, field
>>> @dataclass
... class Opt:
...     lr: float = 1e-3
...     epochs: int = 2
>>> @dataclass
... class Cfg:
...     name: str = "run"
...     opt: Opt = field(default_factory=Opt)
>>> cfg = apply_overrides(Cfg(), ["opt.lr=0.01", "name=test"])
>>> cfg.opt.lr, cfg.name
(0.01, 'test')
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from calo.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "apply_overrides",
    "describe_fields",
    "fields_epilog",
    "from_dict",
    "load_yaml",
    "merge",
    "save_yaml",
    "to_dict",
]


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a plain (YAML-serialisable) dict of a dataclass instance, recursively.

    Nested dataclasses become dicts, tuples lists and paths strings.

    Examples
    --------
    >>> from dataclasses import dataclass, field
    >>> from pathlib import Path
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     sizes: tuple = (8, 16)
    >>> @dataclass
    ... class Cfg:
    ...     out: Path = Path("runs/a")
    ...     opt: Opt = field(default_factory=Opt)
    >>> to_dict(Cfg())
    {'out': 'runs/a', 'opt': {'lr': 0.001, 'sizes': [8, 16]}}
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, Path):
            v = str(v)
        out[f.name] = v
    return out


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"invalid value {value!r} for {key!r}: expected {tp}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"invalid value {value!r} for {key!r}: choose one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, list | tuple):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected a list")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected a mapping")
        return from_dict(tp, value, prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"invalid value {value!r} for {key!r}: expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected an integer")
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected an integer") from None
        if not f.is_integer():
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected an integer")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected a number") from None
    if tp is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"invalid value {value!r} for {key!r}: expected a string")
        return str(value)
    if tp is Path:
        return Path(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"invalid value {value!r} for {key!r}: expected {tp}")


def _hints(cls: type) -> dict[str, Any]:
    """Field types of dataclass ``cls``; falls back to the defaults' types where the
    annotations cannot be resolved (a class defined inside a function or a doctest)."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if not isinstance(f.type, str):
                out[f.name] = f.type
            elif f.default is not dataclasses.MISSING:
                out[f.name] = type(f.default) if f.default is not None else Any
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = type(f.default_factory())
            else:
                out[f.name] = Any
        return out


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and bad values raise ConfigError.

    Values are converted to the field types where that is lossless (``"0.01"`` to a float,
    ``3.0`` to an int).

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 2
    >>> from_dict(Opt, {"lr": "0.01", "epochs": 3.0})
    Opt(lr=0.01, epochs=3)
    >>> from_dict(Opt, {"lr": 1, "epoch": 3})
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: unknown configuration key(s) ['epoch']; valid keys: ['epochs', 'lr']
    """
    data = dict(data or {})
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown configuration key(s) {[prefix + u for u in unknown]}; "
            f"valid keys: {sorted(prefix + n for n in names)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid configuration for {cls.__name__}: {e}") from None
    return obj


def merge(cfg: T, data: dict[str, Any], prefix: str = "") -> T:
    """Return a copy of dataclass ``cfg`` with the (nested) values of ``data`` applied.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 2
    >>> cfg = Opt()
    >>> merge(cfg, {"epochs": 5}), cfg
    (Opt(lr=0.001, epochs=5), Opt(lr=0.001, epochs=2))
    """
    base = to_dict(cfg)

    def deep(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = deep(out[k], v)
            else:
                out[k] = v
        return out

    return from_dict(type(cfg), deep(base, data), prefix=prefix)


def apply_overrides(cfg: T, overrides: list[str] | None) -> T:
    """Apply ``key.sub=value`` strings to dataclass ``cfg``; values are parsed as YAML scalars.

    Leading dashes are dropped and dashes in keys become underscores, so ``--epochs=4``
    works too.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 2
    >>> apply_overrides(Opt(), ["lr=1e-2", "--epochs=4"])
    Opt(lr=0.01, epochs=4)
    """
    data: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} must look like key=value (for example model.k=16)"
            )
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return merge(cfg, data)


def load_yaml(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
    """Load dataclass ``cls`` from a YAML file, then apply command-line ``overrides``.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import dataclass
    >>> from pathlib import Path
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 2
    >>> path = Path(tempfile.mkdtemp()) / "opt.yaml"
    >>> _ = path.write_text("lr: 0.1\\n")
    >>> load_yaml(Opt, path, ["epochs=7"])
    Opt(lr=0.1, epochs=7)
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return apply_overrides(from_dict(cls, data), overrides)


def save_yaml(cfg: Any, path: str | Path) -> Path:
    """Write the resolved configuration ``cfg`` (a dataclass) to ``path`` as YAML.

    Creates the parent folders; returns ``path`` as a :class:`~pathlib.Path`.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 2
    >>> path = save_yaml(Opt(lr=0.1), tempfile.mkdtemp() + "/run/opt.yaml")
    >>> print(path.read_text(), end="")
    lr: 0.1
    epochs: 2
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def _field_docs(cls: type) -> dict[str, str]:
    """First sentence of each field's entry in the numpy-style docstring of ``cls``."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    names: list[str] = []
    text: list[str] = []

    def flush() -> None:
        if names:
            sentence = " ".join(text).split(". ")[0].strip().rstrip(".")
            for n in names:
                docs[n] = sentence.replace("``", "")

    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.endswith(":") and indent == 4 and " " not in stripped.replace(", ", ","):
            flush()
            names = [n.strip() for n in stripped[:-1].split(",")]
            text = []
        elif indent >= 8 and names:
            text.append(stripped)
        elif indent <= 4 and stripped:
            flush()
            names, text = [], []
    flush()
    return docs


def describe_fields(cfg: Any, prefix: str = "") -> list[str]:
    """One line per leaf field of a (nested) dataclass: key, type, default and its meaning.

    The meaning is the first sentence of the field's entry in the class docstring; the
    command-line tools print these lines under ``--help``.

    Examples
    --------
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Opt:
    ...     '''Optimiser.
    ...
    ...     Attributes
    ...     ----------
    ...     lr:
    ...         Learning rate. Adam's.
    ...     '''
    ...     lr: float = 1e-3
    >>> @dataclass
    ... class Cfg:
    ...     opt: Opt = field(default_factory=Opt)
    >>> describe_fields(Cfg())
    ['opt.lr = 0.001  (float) Learning rate']
    """
    out: list[str] = []
    hints = _hints(type(cfg))
    docs = _field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += describe_fields(value, key + ".")
            continue
        tp = hints.get(f.name, Any)
        tname = getattr(tp, "__name__", None) if isinstance(tp, type) else None
        tname = tname or str(tp).replace("typing.", "")
        shown = f"[{', '.join(map(str, value))}]" if isinstance(value, list | tuple) else value
        line = f"{key} = {shown!s}  ({tname})"
        if docs.get(f.name):
            line += f" {docs[f.name]}"
        out.append(line)
    return out


def fields_epilog(cfg: Any, what: str) -> str:
    """The ``--help`` epilog of a command: every field of ``cfg`` that ``key=value`` sets.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Cfg:
    ...     seed: int = 0
    >>> print(fields_epilog(Cfg(), "Cfg"))
    Cfg fields (set in the YAML file or as key=value; default in the middle):
      seed = 0  (int)
    """
    lines = [f"{what} fields (set in the YAML file or as key=value; default in the middle):"]
    return "\n".join(lines + [f"  {line}" for line in describe_fields(cfg)])
