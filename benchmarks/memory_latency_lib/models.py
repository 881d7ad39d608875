"""The models and layers compared: calo's, and the same architectures built from
torch_geometric's ``GravNetConv`` and ``DynamicEdgeConv`` (the peers), which need a kNN
operator: pyg-lib's, or torch-cluster's registered under its name."""

from __future__ import annotations

from typing import Any

from .events import make_events

MODELS = ("gravnet", "garnet", "dgcnn", "pyg_gravnet", "pyg_dgcnn")

LAYERS = ("gravnet_conv", "garnet_conv", "edgeconv", "pyg_gravnet_conv", "pyg_edgeconv")

LABELS = {
    "gravnet": "calo GravNet",
    "garnet": "calo GarNet",
    "dgcnn": "calo DGCNN",
    "pyg_gravnet": "PyG GravNet",
    "pyg_dgcnn": "PyG DGCNN",
    "gravnet_conv": "calo GravNetConv",
    "garnet_conv": "calo GarNetConv",
    "edgeconv": "calo DynamicEdgeConv",
    "pyg_gravnet_conv": "PyG GravNetConv",
    "pyg_edgeconv": "PyG DynamicEdgeConv",
}

PEERS = {"pyg_gravnet", "pyg_dgcnn", "pyg_gravnet_conv", "pyg_edgeconv"}

LAYER_IN, LAYER_OUT = 32, 64

_PYG_LIB: Any = None


def register_pyg_knn() -> str | None:
    """Make ``torch.ops.pyg.knn`` (what PyG 2.8's GravNetConv/DynamicEdgeConv call) available.

    torch_geometric 2.8 calls ``torch.ops.pyg.knn(x, y, ptr_x, ptr_y, k, cosine, num_workers)``
    and gates ``DynamicEdgeConv`` on ``torch_geometric.typing.WITH_KNN``; both come from pyg-lib,
    which has no wheels. torch-cluster's ``torch.ops.torch_cluster.knn`` has the same signature
    and output (``[2, E]``: row 0 the query ``y``, row 1 its neighbour in ``x``), so it is
    registered under that name. Returns how the operator is provided, or ``None`` when neither
    pyg-lib nor torch-cluster is importable.
    """
    global _PYG_LIB
    import torch
    import torch_geometric.typing as tgt

    if tgt.WITH_KNN:
        return "pyg-lib"
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return None
    if _PYG_LIB is None:
        lib = torch.library.Library("pyg", "FRAGMENT")
        lib.define(
            "knn(Tensor x, Tensor y, Tensor? ptr_x, Tensor? ptr_y, int k, bool cosine, "
            "int num_workers) -> Tensor"
        )

        def _knn(x, y, ptr_x, ptr_y, k, cosine, num_workers):
            return torch.ops.torch_cluster.knn(x, y, ptr_x, ptr_y, k, cosine, num_workers)

        lib.impl("knn", _knn, "CompositeExplicitAutograd")
        _PYG_LIB = lib
    tgt.WITH_KNN = True
    return "torch-cluster"


def _pyg_models() -> tuple[type, type]:
    """The PyG-built GravNet and DGCNN models (same architecture and weights layout as calo's)."""
    import torch
    import torch_geometric.nn as gnn

    from calo.models import DGCNNModel, GravNetModel
    from calo.models.common import concat_event_mean, unpack_input

    class PygGravNetModel(GravNetModel):
        """calo's GravNet model with every GravNet layer replaced by PyG's GravNetConv."""

        def __init__(self, in_features: int = 7, n_showers: int = 2) -> None:
            super().__init__(in_features, n_showers)
            cfg = self.config
            for i, conv in enumerate(self.convs):
                self.convs[i] = gnn.GravNetConv(
                    conv.in_channels,
                    cfg.out_channels,
                    space_dimensions=cfg.space_dimensions,
                    propagate_dimensions=cfg.propagate_dimensions,
                    k=cfg.k,
                )

    class PygDGCNNModel(DGCNNModel):
        """calo's DGCNN model with PyG's DynamicEdgeConv (its own kNN) for every EdgeConv."""

        def __init__(self, in_features: int = 7, n_showers: int = 2) -> None:
            super().__init__(in_features, n_showers)
            self.dyn = torch.nn.ModuleList(
                gnn.DynamicEdgeConv(conv.nn, k=self.config.k, aggr="max") for conv in self.convs
            )
            del self.convs

        def forward(self, data_or_x: object, batch: torch.Tensor | None = None) -> torch.Tensor:
            h, batch = unpack_input(data_or_x, batch)
            h = self.input(h)
            for b, conv in enumerate(self.dyn):
                h = self.norms[b](conv(h, batch))
                if b < len(self.exchange):
                    h = self.exchange[b](concat_event_mean(h, batch))
            return self.head(h)

    return PygGravNetModel, PygDGCNNModel


def build(kind: str, name: str) -> Any:
    """The module to measure: a model (7 inputs, 2 showers) or a layer at matched widths."""
    from calo.models import ModelConfig, build_model
    from calo.nn import DynamicEdgeConv, GarNetConv, GravNetConv, edge_mlp

    if kind == "model":
        if name in ("gravnet", "garnet", "dgcnn"):
            return build_model(ModelConfig(name="edgeconv" if name == "dgcnn" else name))
        pyg_gravnet, pyg_dgcnn = _pyg_models()
        return pyg_gravnet() if name == "pyg_gravnet" else pyg_dgcnn()
    gv = dict(space_dimensions=4, propagate_dimensions=22, k=40)
    if name == "gravnet_conv":
        return GravNetConv(LAYER_IN, LAYER_OUT, **gv)
    if name == "garnet_conv":
        return GarNetConv(LAYER_IN, LAYER_OUT, n_aggregators=4, n_propagate=20)
    if name == "edgeconv":
        return DynamicEdgeConv(edge_mlp(LAYER_IN, (64, 64, LAYER_OUT)), k=40)
    import torch_geometric.nn as gnn

    if name == "pyg_gravnet_conv":
        return gnn.GravNetConv(LAYER_IN, LAYER_OUT, **gv)
    return gnn.DynamicEdgeConv(edge_mlp(LAYER_IN, (64, 64, LAYER_OUT)), k=40, aggr="max")


def peer_check() -> dict[str, Any]:
    """calo's and PyG's GravNet layers with the same weights give the same output."""
    import torch
    import torch_geometric.nn as gnn

    from calo.nn import GravNetConv

    torch.manual_seed(0)
    ours = GravNetConv(LAYER_IN, LAYER_OUT, space_dimensions=4, propagate_dimensions=22, k=40)
    theirs = gnn.GravNetConv(LAYER_IN, LAYER_OUT, space_dimensions=4, propagate_dimensions=22, k=40)
    theirs.load_state_dict(ours.state_dict())
    x, b = make_events("uniform", 300, 2, LAYER_IN, seed=5)
    with torch.no_grad():
        diff = (ours(x, b) - theirs(x, b)).abs().max().item()
    out = {"layer": "GravNetConv, same weights, 2 x 300 uniform hits", "max_abs_diff": diff}
    x, b = make_events("toy", 300, 2, 7, seed=5)
    for name in ("gravnet", "dgcnn"):
        torch.manual_seed(0)
        a = build("model", name).eval()
        p = build("model", f"pyg_{name}").eval()
        p.load_state_dict(a.state_dict(), strict=False)
        if name == "dgcnn":  # PyG's DynamicEdgeConv wraps the same edge networks
            for conv, dyn in zip(a.convs, p.dyn, strict=True):
                dyn.nn.load_state_dict(conv.nn.state_dict())
        with torch.no_grad():
            out[f"{name}_model_max_abs_diff"] = (a(x, b) - p(x, b)).abs().max().item()
    return out
