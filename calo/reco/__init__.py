"""Reconstruction without learning or around a network: classical baseline, profile refinement,
share calibration, CLUE, condensation clustering, matching to the truth.

Everything here runs at inference and needs no training code: :mod:`calo.reco.baseline` shares
hits among showers grown from seeds with a transverse shower profile, and refines a network's
fractions with the same profile; :mod:`calo.reco.calibration` corrects the energy split of two
showers a network cannot tell apart, from a table fitted on training events;
:mod:`calo.reco.shares` sums hit fractions into per-event energy shares;
:mod:`calo.reco.clue` clusters hits by density (CLUE, the classical answer to an unknown
number of showers); :mod:`calo.reco.condensation` turns an object condensation network's
beta and clustering coordinates into clusters; :mod:`calo.reco.matching` matches clusters
to truth particles by energy-weighted IoU and computes efficiency, fake, merge and split
rates and responses; :mod:`calo.reco.config` holds their settings. Training (:mod:`calo.train`) imports this package,
never the other way round.

Examples
--------
>>> import numpy as np
>>> from calo.reco import BaselineConfig, share_energy
>>> pos = np.array([[0.0, 0, 0], [10, 0, 0]])
>>> share_energy(pos, np.array([5.0, 4.0]), 2, BaselineConfig(radius=1.0)).round(2).tolist()
[[1.0, 0.0], [0.0, 1.0]]
"""

from calo.reco.baseline import (
    baseline_fractions,
    find_seeds,
    profile_refine,
    refine_fractions,
    share_energy,
)
from calo.reco.calibration import (
    ShareCalibration,
    fit_share_calibration,
    model_split_features,
    share_error,
    split_features,
)
from calo.reco.clue import ClueResult, clue, clue_fields
from calo.reco.condensation import Clusters, cluster_energies, condensation_clusters
from calo.reco.config import (
    BaselineConfig,
    CalibrationConfig,
    ClueConfig,
    CondensationConfig,
    MatchingConfig,
)
from calo.reco.matching import (
    MatchResult,
    binned_stats,
    match_clusters,
    matching_summary,
    spread_stats,
)
from calo.reco.shares import event_energy_shares

__all__ = [
    "BaselineConfig",
    "CalibrationConfig",
    "ClueConfig",
    "ClueResult",
    "Clusters",
    "CondensationConfig",
    "MatchResult",
    "MatchingConfig",
    "ShareCalibration",
    "baseline_fractions",
    "binned_stats",
    "clue",
    "clue_fields",
    "cluster_energies",
    "condensation_clusters",
    "event_energy_shares",
    "find_seeds",
    "fit_share_calibration",
    "match_clusters",
    "matching_summary",
    "model_split_features",
    "profile_refine",
    "refine_fractions",
    "share_energy",
    "share_error",
    "split_features",
    "spread_stats",
]
