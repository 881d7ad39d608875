"""Read ROOT hit trees into torch_geometric ``Data``: schema, features, datasets, padded view.

The public names are re-exported here; see ``docs/data_format.md`` for the tree format and the
``Data`` fields.

Examples
--------
>>> from calo.io import Schema, FeatureSpec
>>> Schema.calo().tree, FeatureSpec().n_features
('events', 7)
"""

from calo.io.dataset import HitDataset
from calo.io.features import AVAILABLE_FEATURES, DEFAULT_FEATURES, FeatureSpec, Normalization
from calo.io.inspect import inspect_file
from calo.io.padded import TruncationReport, to_padded
from calo.io.reader import (
    ChunkInfo,
    ReadPolicy,
    chunk_to_data,
    expand_paths,
    file_format,
    iter_data,
    iterate_events,
    pad_particles,
    read_data,
)
from calo.io.schema import ENERGY_UNITS, LENGTH_UNITS, PRESETS, Schema
from calo.io.source import BranchInfo
from calo.io.summary import SKIP_REASONS, STATUS_CODES, ReadSummary

__all__ = [
    "AVAILABLE_FEATURES",
    "DEFAULT_FEATURES",
    "ENERGY_UNITS",
    "LENGTH_UNITS",
    "PRESETS",
    "SKIP_REASONS",
    "STATUS_CODES",
    "BranchInfo",
    "ChunkInfo",
    "FeatureSpec",
    "HitDataset",
    "Normalization",
    "ReadPolicy",
    "ReadSummary",
    "Schema",
    "TruncationReport",
    "chunk_to_data",
    "expand_paths",
    "file_format",
    "inspect_file",
    "iter_data",
    "iterate_events",
    "pad_particles",
    "read_data",
    "to_padded",
]
