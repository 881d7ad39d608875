"""Distance potentials V(d) that weight messages in GravNet and GarNet.

========== ======================= ==================================================
name       V as a function of d    used by
========== ======================= ==================================================
``exp10``  ``exp(-10 d^2)``        GravNet in the reference code and torch_geometric
``gauss``  ``exp(-d^2)``           GravNet in the paper, GarNet in hls4ml
``exp_abs`` ``exp(-|d|)``          GarNet in the paper
========== ======================= ==================================================

Examples
--------
>>> import torch
>>> potential_from_d2(torch.tensor([0.0, 1.0]), "exp10").tolist()
[1.0, 4.539993096841499e-05]
>>> potential_from_d(torch.tensor([-2.0]), "exp_abs").tolist()
[0.1353352814912796]
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from calo.errors import ConfigError

__all__ = ["POTENTIALS", "Potential", "check_potential", "potential_from_d", "potential_from_d2"]

Potential = Literal["exp10", "gauss", "exp_abs"]
POTENTIALS: tuple[str, ...] = ("exp10", "gauss", "exp_abs")


def check_potential(name: str) -> str:
    """Return ``name`` if it is a known potential, else raise a ConfigError listing the choices.

    Examples
    --------
    >>> check_potential("gauss")
    'gauss'
    """
    if name not in POTENTIALS:
        raise ConfigError(f"unknown potential {name!r}; choose one of {list(POTENTIALS)}")
    return name


def potential_from_d2(d2: Tensor, name: str) -> Tensor:
    """V as a function of the squared distance ``d2 >= 0`` (``inf`` gives 0).

    For ``exp_abs`` the square root is taken safely: the gradient at ``d2 = 0`` (a hit and
    itself) is 0 instead of NaN.

    Parameters
    ----------
    d2:
        Squared distances, any shape.
    name:
        ``"exp10"``, ``"gauss"`` or ``"exp_abs"``.

    Returns
    -------
    Tensor
        Weights in ``[0, 1]``, same shape as ``d2``.

    Examples
    --------
    >>> potential_from_d2(torch.tensor([4.0, float("inf")]), "exp_abs").tolist()
    [0.1353352814912796, 0.0]
    """
    if name == "exp10":
        return torch.exp(-10.0 * d2)
    if name == "gauss":
        return torch.exp(-d2)
    if name == "exp_abs":
        pos = d2 > 0
        d = torch.sqrt(torch.where(pos, d2, torch.ones_like(d2)))
        return torch.where(pos, torch.exp(-d), torch.ones_like(d2))
    raise ConfigError(f"unknown potential {name!r}; choose one of {list(POTENTIALS)}")


def potential_from_d(d: Tensor, name: str) -> Tensor:
    """V as a function of a signed distance ``d`` (GarNet's learned hit-aggregator distance).

    Parameters
    ----------
    d:
        Distances, any shape and sign.
    name:
        ``"exp10"``, ``"gauss"`` or ``"exp_abs"``.

    Returns
    -------
    Tensor
        Weights in ``(0, 1]``, same shape as ``d``.

    Examples
    --------
    >>> potential_from_d(torch.tensor([1.0]), "gauss").tolist()
    [0.3678794503211975]
    """
    if name == "exp10":
        return torch.exp(-10.0 * d * d)
    if name == "gauss":
        return torch.exp(-d * d)
    if name == "exp_abs":
        return torch.exp(-torch.abs(d))
    raise ConfigError(f"unknown potential {name!r}; choose one of {list(POTENTIALS)}")
