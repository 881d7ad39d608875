"""Magnitude pruning of the e/pi model during training, as a Lightning callback.

:class:`MagnitudePruning` is Lightning's :class:`~lightning.pytorch.callbacks.ModelPruning`
(``torch.nn.utils.prune.l1_unstructured``, or ``global_unstructured`` with
``pruning.scope=global``) with the schedule of :class:`calo.train.config.PruningConfig` and
three things the FPGA model needs:

* the GarNet kernels of :class:`calo.fpga.qat.QGarNetStack` are parameters of plain
  containers that the stack reads as attributes and never calls, so torch's pruning hooks
  (forward pre-hooks of those containers) would never refresh ``kernel = kernel_orig * mask``.
  A forward pre-hook on the whole model (:func:`apply_masks`) runs them before every forward;
* each epoch's sparsity is a target fraction of every tensor (:meth:`PruningConfig.target`);
  torch's pruning takes the fraction of the *remaining* weights, so the callback passes the
  increment ``(s_e - s_{e-1}) / (1 - s_{e-1})``;
* the best checkpoint is chosen among epochs at the final sparsity: when the final sparsity
  is reached, or when the quantization-aware epochs start before it is (the sparsity then
  jumps to the final one), the best-checkpoint record starts over
  (:func:`calo.train.qat.reset_best_records`).

Checkpoints hold plain weights with exact zeros (ModelPruning writes ``kernel_orig * mask``
into the checkpoint's state dict); at the end of training the masks are made permanent
(``torch.nn.utils.prune.remove``). :func:`sparsity_report` is what ``metrics.json`` records.

Examples
--------
>>> from calo.train.config import EPiConfig, PruningConfig
>>> from calo.train.e_pi import build_e_pi_model
>>> model = build_e_pi_model(EPiConfig())
>>> [name for _, name in pruning_targets(model, "garnet")][:3]
['s_kernel', 'flr_kernel', 'fout_kernel']
>>> len(pruning_targets(model, "head")), len(pruning_targets(model, "both"))
(4, 13)
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelPruning
from torch import nn
from torch.nn.utils import prune

from calo.errors import ConfigError
from calo.train.config import PruningConfig
from calo.train.qat import reset_best_records

__all__ = [
    "GARNET_KERNELS",
    "MagnitudePruning",
    "apply_masks",
    "model_dsp",
    "pruning_targets",
    "sparsity_report",
]

#: the GarNet kernels of every sublayer of :class:`calo.fpga.qat.QGarNetStack` that can be pruned
GARNET_KERNELS: tuple[str, ...] = ("s_kernel", "flr_kernel", "fout_kernel")


def pruning_targets(model: nn.Module, parameters: str) -> list[tuple[nn.Module, str]]:
    """The ``(module, name)`` pairs of a :class:`~calo.fpga.qat.QGarNetModel` to prune.

    ``head``: the ``weight`` of every module outside the stack that has one (the Dense head
    and the two outputs); ``garnet``: :data:`GARNET_KERNELS` of every sublayer; ``both``.
    A name is that of the parameter before pruning (pruning renames it ``<name>_orig``).

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel
    >>> [n for _, n in pruning_targets(QGarNetModel(), "head")]
    ['weight', 'weight', 'weight', 'weight']
    >>> pruning_targets(QGarNetModel(), "bias")
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: pruning.parameters must be head, garnet or both, got 'bias'
    """
    if parameters not in ("head", "garnet", "both"):
        raise ConfigError(f"pruning.parameters must be head, garnet or both, got {parameters!r}")
    stack = getattr(model, "stack", None)
    if stack is None or not hasattr(stack, "layers"):
        raise ConfigError(
            f"pruning needs the e/pi model (a GarNetStack and a head), got {type(model).__name__}"
        )
    out: list[tuple[nn.Module, str]] = []
    if parameters in ("garnet", "both"):
        for layer in stack.layers:
            out += [(layer, name) for name in GARNET_KERNELS]
    if parameters in ("head", "both"):
        in_stack = {id(m) for m in stack.modules()}
        for m in model.modules():
            if id(m) in in_stack:
                continue
            w = getattr(m, "weight_orig", None)
            if isinstance(w, nn.Parameter) or isinstance(getattr(m, "weight", None), nn.Parameter):
                out.append((m, "weight"))
    return out


def apply_masks(model: nn.Module, args: Any = None) -> None:
    """Recompute every pruned tensor ``name = name_orig * name_mask`` of ``model``'s modules.

    torch's pruning does this in a forward pre-hook of the module that holds the parameter;
    the GarNet stack never calls the containers of its kernels, so this runs as a forward
    pre-hook of the whole model (and may be called directly). Stateless, so a copy of the
    model (checkpointing) copies it harmlessly.

    Examples
    --------
    >>> lin = nn.Linear(2, 1)
    >>> _ = prune.l1_unstructured(lin, "weight", amount=0.5)
    >>> with torch.no_grad():
    ...     _ = lin.weight_orig.fill_(3.0)
    >>> apply_masks(lin)
    >>> sorted(lin.weight.flatten().tolist())
    [0.0, 3.0]
    """
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                hook(m, None)


def _current(module: nn.Module, name: str) -> torch.Tensor:
    return getattr(module, name).detach()


def sparsity_report(model: nn.Module, parameters: str = "both") -> dict[str, Any]:
    """Zeros per pruned tensor and in all of them together (for ``metrics.json``).

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel
    >>> m = QGarNetModel()
    >>> with torch.no_grad():
    ...     m.regression.weight[0, :4] = 0.0
    >>> r = sparsity_report(m, "head")
    >>> r["tensors"]["regression.weight"]
    {'zeros': 4, 'size': 8, 'sparsity': 0.5}
    >>> r["total"]["size"], r["total"]["zeros"]
    (400, 4)
    """
    names = {id(m): n for n, m in model.named_modules()}
    tensors: dict[str, dict[str, Any]] = {}
    zeros = size = 0
    for module, name in pruning_targets(model, parameters):
        t = _current(module, name)
        z, s = int((t == 0).sum()), int(t.numel())
        key = f"{names[id(module)]}.{name}".lstrip(".")
        tensors[key] = {"zeros": z, "size": s, "sparsity": z / s}
        zeros, size = zeros + z, size + s
    return {
        "parameters": parameters,
        "tensors": tensors,
        "total": {"zeros": zeros, "size": size, "sparsity": zeros / size if size else 0.0},
    }


def model_dsp(model: nn.Module, head_reuse_factor: int = 1) -> dict[str, Any]:
    """DSP estimate of a :class:`~calo.fpga.qat.QGarNetModel` with and without its zero
    weights (:func:`calo.fpga.latency.pruned_dsp` on the firmware's quantized arrays and the
    head's weights).

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel
    >>> d = model_dsp(QGarNetModel())
    >>> d["dense"]  # the stack's 2880 (continuous kernels) and the paper's head, 400
    3280
    """
    from calo.fpga.latency import pruned_dsp

    stack = model.stack
    heads = [m.weight.detach().cpu().numpy() for m, _ in pruning_targets(model, "head")]
    c = pruned_dsp(
        stack.quantized_sublayers(),
        stack.config.n_vertices,
        stack.config.reuse_factor,
        quantized=stack.ternary,
        head_weights=heads,
        head_reuse_factor=head_reuse_factor,
    )
    return {
        "dsp": c.dsp,
        "dense": c.dense,
        "saved": c.saved,
        "terms": c.terms,
        "zero_weights": c.zero_weights,
        "weights": c.weights,
    }


class MagnitudePruning(ModelPruning):
    """Gradual magnitude pruning of the e/pi model (see the module docstring).

    Parameters
    ----------
    config:
        The schedule, the pruned parameters and the scope.

    Examples
    --------
    >>> cb = MagnitudePruning(PruningConfig(enabled=True, amount=0.5, ramp_epochs=2))
    >>> cb.state_dict()
    {'sparsity': 0.0, 'final_epoch': None}
    >>> round(cb.increment(0), 4), cb.state_dict()["sparsity"]
    (0.4375, 0.4375)
    >>> round(cb.increment(1), 4)  # (0.5 - 0.4375) / (1 - 0.4375) of what is left
    0.1111
    """

    def __init__(self, config: PruningConfig) -> None:
        self.config = config
        self.sparsity = 0.0
        self.final_epoch: int | None = None
        self._hook: Any = None
        super().__init__(
            pruning_fn="l1_unstructured",
            use_global_unstructured=config.scope == "global",
            amount=self.increment,
            make_pruning_permanent=True,
            use_lottery_ticket_hypothesis=False,
            prune_on_train_epoch_end=True,
        )

    def state_dict(self) -> dict[str, Any]:
        """The sparsity reached so far and the epoch at which it became final (``--resume``)."""
        return {"sparsity": self.sparsity, "final_epoch": self.final_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.sparsity = float(state_dict.get("sparsity", 0.0))
        self.final_epoch = state_dict.get("final_epoch")

    def increment(self, epoch: int) -> float:
        """The fraction of the remaining weights to prune after ``epoch`` (0: none)."""
        return self._step_to(self.config.target(epoch))

    def _step_to(self, target: float) -> float:
        if target <= self.sparsity + 1e-12:
            return 0.0
        inc = (target - self.sparsity) / (1.0 - self.sparsity)
        self.sparsity = target
        return inc

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Choose the pruned tensors of ``pl_module.model`` and hook :func:`apply_masks`."""
        model = pl_module.model
        self._parameters_to_prune = pruning_targets(model, self.config.parameters)
        super().setup(trainer, pl_module, stage)
        if self._hook is None:
            self._hook = model.register_forward_pre_hook(apply_masks)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """On ``--resume`` the checkpoint holds plain weights: prune again to the sparsity
        it had (its zeros are the smallest magnitudes), so that they stay zero."""
        pruned = any(prune.is_pruned(m) for m, _ in self._parameters_to_prune)
        if self.sparsity > 0 and not pruned:
            self.apply_pruning(self.sparsity)
            apply_masks(pl_module.model)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Quantization-aware epochs before the final sparsity: jump to it now."""
        stack = pl_module.model.stack
        if stack.quantized and self.sparsity < self.config.amount:
            inc = self._step_to(self.config.amount)
            if inc:
                self.apply_pruning(inc)
                apply_masks(pl_module.model)
            self._reached_final(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Prune to the epoch's target; at the final sparsity restart the best record."""
        super().on_train_epoch_end(trainer, pl_module)
        apply_masks(pl_module.model)
        if self.config.amount and self.sparsity >= self.config.amount:
            self._reached_final(trainer)

    def _reached_final(self, trainer: L.Trainer) -> None:
        if self.final_epoch is None:
            self.final_epoch = int(trainer.current_epoch)
            reset_best_records(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Make the pruning permanent (plain weights with exact zeros) and unhook."""
        super().on_train_end(trainer, pl_module)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def report(self) -> dict[str, Any]:
        """The schedule's outcome for ``metrics.json``."""
        return {
            "amount": self.config.amount,
            "sparsity_reached": self.sparsity,
            "final_epoch": self.final_epoch,
            "scope": self.config.scope,
        }
