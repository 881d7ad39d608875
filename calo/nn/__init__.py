"""Graph-network layers for calorimeter hits: kNN, GravNet, GarNet, EdgeConv.

Layers only (no training code). Every layer takes hit features ``x [N, F]`` and the sorted event
index ``batch [N]`` of a torch_geometric batch; :class:`GarNetConv` also takes padded input
``(X [B, V, F], n [B])``.

Examples
--------
>>> import torch
>>> from calo.nn import GravNetConv
>>> conv = GravNetConv(7, 16, space_dimensions=4, propagate_dimensions=8, k=3)
>>> conv(torch.randn(10, 7), torch.tensor([0] * 6 + [1] * 4)).shape
torch.Size([10, 16])
"""

from calo.nn.edgeconv import DynamicEdgeConv, edge_mlp
from calo.nn.garnet import GarNetConv
from calo.nn.gravnet import GravNetConv
from calo.nn.knn import batch_to_ptr, gather_dist2, knn, knn_graph
from calo.nn.potentials import POTENTIALS, potential_from_d, potential_from_d2

__all__ = [
    "POTENTIALS",
    "DynamicEdgeConv",
    "GarNetConv",
    "GravNetConv",
    "batch_to_ptr",
    "edge_mlp",
    "gather_dist2",
    "knn",
    "knn_graph",
    "potential_from_d",
    "potential_from_d2",
]
