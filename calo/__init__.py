"""calo: machine-learned calorimeter clustering with distance-weighted graph networks.

Subpackages follow the data flow: :mod:`calo.geometry` and :mod:`calo.sim` (toy calorimeter),
:mod:`calo.io` (ROOT readers), :mod:`calo.nn` (layers), :mod:`calo.models` (architectures),
:mod:`calo.reco` (baseline, refinement, share calibration),
:mod:`calo.train` (losses, metrics, training), :mod:`calo.fpga` (fixed-point GarNet) and
:mod:`calo.plots` (figures).
"""

from calo.errors import CaloError, CheckpointError, ConfigError, DataError, FixedPointError

__version__ = "0.1.0"

__all__ = [
    "CaloError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "FixedPointError",
    "__version__",
]
