"""Configuration dataclasses as OmegaConf structured configs: YAML, ``key=value``, ``--help``.

Every component has one dataclass. `OmegaConf <https://omegaconf.readthedocs.io>`_ does the
work: it builds a typed config from the dataclass, merges YAML files and ``key.sub=value``
overrides into it (values parsed as YAML, checked against the field types: int, float, bool,
str, Path, Literal, Optional, unions, tuples, lists, nested dataclasses) and turns the result
back into the dataclass, whose ``__post_init__`` checks the ranges. This module keeps the
package's five entry points (:func:`from_dict`, :func:`apply_overrides`, :func:`load_yaml`,
:func:`to_dict`, :func:`save_yaml`) as thin wrappers that turn OmegaConf's errors into one-line
:class:`~calo.errors.ConfigError` messages naming the key and the value, and
:func:`fields_epilog` writes every field of a config with its default and the meaning from the
class docstring (parsed with ``docstring_parser``) under a command's ``--help``.

Overrides are OmegaConf's dotlist: ``opt.lr=0.01``, ``gun.pdg=[11,211]``, ``limit=null``
(``null`` or ``~`` set an optional field to None; ``key=`` sets the empty string). A list is
always written in brackets: ``data.files=[a.root]``.

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

import contextlib
import dataclasses
import json
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import docstring_parser
import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, TupleConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

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


@contextlib.contextmanager
def _one_line_errors(schema: DictConfig, prefix: str = "", origin: str = "") -> Iterator[None]:
    """Re-raise OmegaConf's (multi-line) errors as a one-line ConfigError that names the key
    (``prefix`` put before it) or else the ``origin`` of the values (an override)."""
    try:
        yield
    except (ConfigKeyError, ConfigAttributeError) as e:
        key = e.full_key or str(e.key)
        parent = key.rpartition(".")[0]
        node = OmegaConf.select(schema, parent) if parent else schema
        if not isinstance(node, DictConfig):
            node, parent = schema, ""
        valid = sorted(prefix + (f"{parent}.{k}" if parent else str(k)) for k in node)
        raise ConfigError(
            f"unknown configuration key(s) {[prefix + key]}; valid keys: {valid}"
        ) from None
    except OmegaConfBaseException as e:
        msg = str(e.msg if e.msg is not None else e).splitlines()[0]
        if "$VALUE" in msg and e.__context__ is not None:  # OmegaConf left its template
            msg = str(e.__context__)
        value = getattr(e, "value", None)
        if e.full_key and isinstance(
            OmegaConf.select(schema, e.full_key), ListConfig | TupleConfig
        ):
            msg = f"expected a list such as [a,b] or [], got {value!r}"
        elif value in ("none", "None"):
            msg += " (no value is written null)"
        where = f" for {prefix + e.full_key!r}" if e.full_key else ""
        where = where or (f" in {origin!r}" if origin else "")
        raise ConfigError(f"invalid value{where}: {msg}") from None


def _build(cls: type[T], *sources: Any, prefix: str = "", overrides: Sequence[str] = ()) -> T:
    """Merge ``sources`` (dataclass instances, mappings, DictConfigs), then the ``key=value``
    ``overrides`` one by one (so that an error can name its override), into the structured
    config of ``cls`` and return the dataclass (its ``__post_init__`` checks run)."""
    schema = OmegaConf.structured(cls)
    with _one_line_errors(schema, prefix):
        merged = OmegaConf.merge(schema, *sources)
    for item in overrides:
        with _one_line_errors(schema, prefix, origin=item):
            merged = OmegaConf.merge(merged, _dotlist(item))
    with _one_line_errors(schema, prefix):
        try:
            return OmegaConf.to_object(merged)  # type: ignore[return-value]
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid configuration for {cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a plain (YAML- and JSON-serialisable) dict of a dataclass instance, recursively.

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
    # asdict recurses into nested dataclasses; the JSON round trip makes tuples lists.
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=_path_to_str))


def _path_to_str(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    raise ConfigError(f"configuration value {value!r} ({type(value).__name__}) cannot be written")


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and bad values raise ConfigError.

    Values are converted to the field types where OmegaConf can (``"0.01"`` to a float,
    ``"yes"`` to True, ``[1, 2]`` to a tuple); ``prefix`` is put before the keys in errors.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 1e-3
    ...     epochs: int = 2
    >>> from_dict(Opt, {"lr": "0.01", "epochs": 3})
    Opt(lr=0.01, epochs=3)
    >>> from_dict(Opt, {"lr": 1, "epoch": 3})
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: unknown configuration key(s) ['epoch']; valid keys: ['epochs', 'lr']
    >>> from_dict(Opt, {"epochs": 1.5})
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: invalid value for 'epochs': Value '1.5' of type 'float' could not be converted to Integer
    """
    return _build(cls, dict(data or {}), prefix=prefix)


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
    return _build(type(cfg), cfg, data, prefix=prefix)


def _dotlist(item: str) -> DictConfig:
    """OmegaConf's dotlist of one ``key=value``; ``--epochs=4`` and ``max-epochs=4`` work too."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (for example model.k=16)")
    key, value = item.split("=", 1)
    value = value if value.strip() else "''"  # key= is the empty string, not null
    try:
        return OmegaConf.from_dotlist([f"{key.strip().lstrip('-').replace('-', '_')}={value}"])
    except (OmegaConfBaseException, yaml.YAMLError) as e:
        raise ConfigError(f"invalid override {item!r}: {str(e).splitlines()[0]}") from None


def apply_overrides(cfg: T, overrides: list[str] | None) -> T:
    """Apply ``key.sub=value`` strings to dataclass ``cfg``; values are parsed as YAML.

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
    >>> apply_overrides(Opt(), ["epochs=four"])
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: invalid value for 'epochs': Value 'four' of type 'str' could not be converted to Integer
    """
    return _build(type(cfg), cfg, overrides=list(overrides or []))


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
        data = OmegaConf.load(path)
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise ConfigError(f"configuration file {path} is not valid YAML: {msg}") from None
    if not isinstance(data, DictConfig):
        raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
    return _build(cls, data, overrides=list(overrides or []))


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
    """First sentence of each field's entry in the numpy-style docstring of ``cls``
    (``Parameters`` or ``Attributes``; ``a, b:`` documents two fields)."""
    docs: dict[str, str] = {}
    for param in docstring_parser.parse(cls.__doc__ or "", docstring_parser.Style.NUMPYDOC).params:
        text = " ".join((param.description or "").split())
        sentence = text.split(". ")[0].strip().rstrip(".").replace("``", "")
        for name in param.arg_name.split(","):
            docs[name.strip()] = sentence
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
    hints = typing.get_type_hints(type(cfg))
    docs = _field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += describe_fields(value, key + ".")
            continue
        tp = hints[f.name]
        tname = tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
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
