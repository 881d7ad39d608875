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
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from calo.errors import CheckpointError

__all__ = ["CHECKPOINT_FORMAT", "AtomicCheckpointIO", "read_checkpoint", "resolve_checkpoint"]

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
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", file=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(
            f"cannot read the checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "is it a calo/PyTorch checkpoint and complete?",
            file=path,
        ) from None
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
