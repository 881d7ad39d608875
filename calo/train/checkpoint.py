"""Checkpoints: atomic writing, and safe loading with ``torch.load(weights_only=True)``.

A calo checkpoint is a Lightning checkpoint (``state_dict``, optimiser and loop state) plus a
``"calo"`` entry that holds only plain types: the format version, the package version, the
resolved :class:`~calo.train.config.TrainConfig` as a dict, the feature normalisation as lists
and the per-epoch loss history. Everything loads with ``weights_only=True``.

Examples
--------
>>> import tempfile, torch
>>> path = tempfile.mkdtemp() + "/x.ckpt"
>>> AtomicCheckpointIO().save_checkpoint({"a": torch.zeros(1)}, path)
>>> read_checkpoint(path, require_calo=False)["a"].tolist()
[0.0]
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from calo.errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT",
    "AtomicCheckpointIO",
    "load_weights",
    "read_checkpoint",
    "resolve_checkpoint",
]

#: Version of the ``"calo"`` entry of a checkpoint.
CHECKPOINT_FORMAT = 1


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``path.tmp`` next to the target, flushes it to disk, then renames it over ``path``.

    ``os.replace`` within one folder is atomic, so a crash leaves either the old or the new
    checkpoint, never a truncated one (Lightning's own writer stages the file in the system
    temporary folder, which is a copy, not a rename, when that is another file system).

    Examples
    --------
    >>> AtomicCheckpointIO().__class__.__name__
    'AtomicCheckpointIO'
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Save ``checkpoint`` to ``path`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def resolve_checkpoint(run_or_checkpoint: str | Path) -> Path:
    """A checkpoint file, or the best (else last) checkpoint of a run folder.

    Examples
    --------
    >>> resolve_checkpoint("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.CheckpointError: ...
    """
    p = Path(run_or_checkpoint)
    if p.is_dir():
        for cand in (p / "checkpoints" / "best.ckpt", p / "checkpoints" / "last.ckpt"):
            if cand.is_file():
                return cand
        raise CheckpointError(
            "run folder has no checkpoints/best.ckpt or checkpoints/last.ckpt; "
            "give a checkpoint file or the folder calo-train wrote",
            file=p,
        )
    if not p.is_file():
        raise CheckpointError("checkpoint or run folder does not exist", file=p)
    return p


def read_checkpoint(path: str | Path, require_calo: bool = True) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check that calo wrote it.

    Raises :class:`~calo.errors.CheckpointError` for a missing, unreadable, non-dict or foreign
    checkpoint (no ``"calo"`` entry, wrong format version, no ``state_dict``).

    Examples
    --------
    >>> import tempfile
    >>> p = tempfile.mkdtemp() + "/foreign.ckpt"; torch.save({"w": 1}, p)
    >>> read_checkpoint(p)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.CheckpointError: ...
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            "is a folder, not a checkpoint file; give a .ckpt file (calo-evaluate also takes "
            "a run folder)",
            file=path,
        )
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", file=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(_why_unreadable(path, e), file=path) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint holds a {type(ckpt).__name__}, not a dict", file=path)
    if "calo_fpga" in ckpt:
        raise CheckpointError(
            "a checkpoint of the former calo.fpga.train loop, which calo no longer reads; "
            "train the FPGA GarNet with `calo-train --task e_pi` and give its run folder or "
            "checkpoint to calo-evaluate and calo-export",
            file=path,
        )
    if not require_calo:
        return ckpt
    meta = ckpt.get("calo")
    if not isinstance(meta, dict):
        raise CheckpointError(
            "not a calo checkpoint (no 'calo' entry with the run configuration)", file=path
        )
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint format {meta.get('format')!r} is not supported (expected "
            f"{CHECKPOINT_FORMAT})",
            file=path,
        )
    for key in ("config", "normalization"):
        if not isinstance(meta.get(key), dict):
            raise CheckpointError(f"checkpoint's calo entry lacks {key!r}", file=path)
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError("checkpoint has no state_dict", file=path)
    return ckpt


#: first bytes of files that are sometimes given in place of a checkpoint
_FOREIGN_MAGIC = {
    b"root": "a ROOT file",
    b"\x89HDF": "an HDF5 file",
    b"\x93NUMPY": "a NumPy .npy file",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
}
_REFUSED = re.compile(r"Unsupported (?:global|operand)[^.\n]*?(?:GLOBAL )?([\w.]+)")


def _why_unreadable(path: Path, err: BaseException) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` failed with ``err``.

    The cases: an empty file, a truncated or damaged zip archive, a foreign file, a pickle
    that ``weights_only`` refuses (the file holds code); torch's own advice to load with
    ``weights_only=False`` is never repeated.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"cannot read the checkpoint file ({type(e).__name__}: {e.strerror or e})"
    if size == 0:
        return (
            "the checkpoint file is empty (0 bytes): its writing or copying was cut; use "
            "another copy, or the run's other checkpoint (checkpoints/last.ckpt or best.ckpt)"
        )
    text = " ".join(str(err).split())
    if head.startswith(b"PK\x03\x04"):
        if not zipfile.is_zipfile(path):
            return (
                f"the checkpoint is truncated ({size} bytes, the end of its zip archive is "
                "missing): its writing or copying was cut; use another copy, or the run's "
                "other checkpoint (checkpoints/last.ckpt or best.ckpt)"
            )
        if isinstance(err, pickle.UnpicklingError) and "weights only" in text.lower():
            found = _REFUSED.search(text)
            what = f" ({found.group(1)})" if found else ""
            return (
                f"the file holds code that calo will not run: objects other than tensors and "
                f"plain values{what}, which calo does not unpickle; calo reads the checkpoints "
                "calo-train writes"
            )
        return (
            f"the checkpoint is damaged ({type(err).__name__}: {_first_sentence(text)}); use "
            "another copy, or the run's other checkpoint (checkpoints/last.ckpt or best.ckpt)"
        )
    for magic, kind in _FOREIGN_MAGIC.items():
        if head.startswith(magic):
            return (
                f"cannot read the checkpoint: this is {kind}, not a checkpoint; give a .ckpt "
                "file written by calo-train"
            )
    if not head.startswith(b"\x80"):  # neither a zip archive nor torch's legacy pickle
        return (
            "cannot read the checkpoint: not a PyTorch checkpoint (the file starts with "
            f"{head[:4]!r}, not a zip archive); give a .ckpt file written by calo-train"
        )
    return (
        f"cannot read the checkpoint ({type(err).__name__}: {_first_sentence(text)}); it is "
        "in PyTorch's legacy format and damaged or not a checkpoint"
    )


def _first_sentence(text: str) -> str:
    """The first sentence of an exception message, and never torch's advice on weights_only."""
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    if "weights_only" in first:
        return "not loadable with weights_only=True"
    return first[:200]


def load_weights(
    model: torch.nn.Module, state: dict[str, Any], path: str | Path, what: str
) -> None:
    """Load ``state`` into ``model``; if it does not fit, raise one
    :class:`~calo.errors.CheckpointError` line naming the file and the missing, unexpected and
    mis-shaped keys (the first few of each, with counts).

    Examples
    --------
    >>> model = torch.nn.Linear(2, 1)
    >>> load_weights(model, {"weight": torch.zeros(1, 2), "bias": torch.ones(1)}, "m.ckpt", "a")
    >>> model.bias.tolist()
    [1.0]
    >>> load_weights(model, {"weight": torch.zeros(3, 2), "scale": torch.ones(1)}, "m.ckpt",
    ...              "the linear model")
    Traceback (most recent call last):
    ...
    calo.errors.CheckpointError: weights do not fit the linear model: 1 missing (bias), 1 unexpected (scale), 1 of another shape (weight: [3, 2] in the file, [1, 2] in the model) [file m.ckpt]
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: {_shape(state[k])} in the file, {list(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and _shape(state[k]) != list(v.shape)
    ]
    problems = [
        _listed(n, keys)
        for n, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("of another shape", shapes),
        )
        if keys
    ]
    if not problems:
        try:
            model.load_state_dict(state)
            return
        except (RuntimeError, TypeError, ValueError) as e:
            problems = [_first_sentence(" ".join(str(e).split()))]
    raise CheckpointError(f"weights do not fit {what}: {', '.join(problems)}", file=path)


def _shape(value: Any) -> list[int] | str:
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _listed(name: str, keys: list[str], first: int = 3) -> str:
    more = f", ... {len(keys) - first} more" if len(keys) > first else ""
    return f"{len(keys)} {name} ({', '.join(keys[:first])}{more})"
