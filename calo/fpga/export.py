"""Export a fixed-point GarNet to C++ for hls4ml's ``nnet_garnet.h``, and run it with g++."""

from __future__ import annotations

import os
from pathlib import Path

from calo.errors import FixedPointError

__all__ = ["hls4ml_include_dirs"]


def hls4ml_include_dirs() -> list[Path]:
    """Include folders of the installed hls4ml wheel: ``ap_types`` and ``nnet_utils``.

    Raises
    ------
    FixedPointError
        If hls4ml is not installed or its templates are missing.

    Examples
    --------
    >>> [p.name for p in hls4ml_include_dirs()]  # doctest: +SKIP
    ['ap_types', 'nnet_utils']
    """
    try:
        import hls4ml
    except ImportError:
        raise FixedPointError(
            "hls4ml is not installed; install calo with the fpga extra (pip install -e '.[fpga]')"
        ) from None
    base = Path(os.path.dirname(hls4ml.__file__)) / "templates" / "vivado"
    dirs = [base / "ap_types", base / "nnet_utils"]
    for d in dirs:
        if not d.is_dir():
            raise FixedPointError(f"hls4ml installation has no folder {d}")
    return dirs
