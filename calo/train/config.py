"""Configuration of a training run: model, data, optimiser, trainer and baseline.

:class:`TrainConfig` nests one dataclass per component. It loads from YAML with
:func:`calo.config.load_yaml`, takes ``key.sub=value`` overrides with
:func:`calo.config.apply_overrides`, and is written as ``config.yaml`` into every run folder.

Examples
--------
>>> from calo.config import apply_overrides
>>> cfg = apply_overrides(TrainConfig(), ["model.name=garnet", "optim.lr=1e-3"])
>>> cfg.model.name, cfg.optim.lr
('garnet', 0.001)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from calo.errors import ConfigError
from calo.fpga.garnet import PAPER_SUBLAYERS, GarNetFixedConfig
from calo.fpga.qat import HeadFixedConfig
from calo.models.config import GravNetModelConfig, ModelConfig
from calo.reco.config import (
    BaselineConfig,
    CalibrationConfig,
    ClueConfig,
    CondensationConfig,
    MatchingConfig,
)

__all__ = [
    "CondensationTaskConfig",
    "DataConfig",
    "EPiConfig",
    "LossConfig",
    "OptimConfig",
    "PruningConfig",
    "TrainConfig",
    "TrainerConfig",
    "quick_model",
]

#: the tasks of calo-train (see :class:`TrainConfig`)
TASKS = ("fractions", "e_pi", "condensation")


@dataclass
class DataConfig:
    """Where the events come from and how they are batched.

    Attributes
    ----------
    files:
        ROOT files or glob patterns. Empty: the built-in data, ``n_events`` two-shower events
        generated with :mod:`calo.sim` (seed ``sim_seed``) into ``cache_dir`` once.
    schema:
        Path of a branch-schema YAML file (:meth:`calo.io.Schema.from_yaml`: the tree's name
        and which branch holds each of calo's roles) for files written by another tool;
        ``""``: calo's own layout (what ``calo-simulate`` writes). The schema used is written
        into the run folder as ``schema.yaml``.
    n_events:
        Number of built-in events (ignored with ``files``).
    sim_seed:
        Seed of the built-in simulation.
    cache_dir:
        Folder of the built-in data file (``""``: ``$CALO_CACHE`` or ``~/.cache/calo``).
    max_events:
        Read at most this many events from ``files`` (0: all).
    val_fraction:
        Fraction of events held out for validation and the final metrics.
    batch_size:
        Events per batch (per process).
    num_workers:
        DataLoader worker processes.
    split_seed:
        Seed of the train/validation split.

    Examples
    --------
    >>> DataConfig().batch_size > 0
    True
    """

    files: list[str] = field(default_factory=list)
    schema: str = ""
    n_events: int = 3000
    sim_seed: int = 20190227
    cache_dir: str = ""
    max_events: int = 0
    val_fraction: float = 0.2
    batch_size: int = 8
    num_workers: int = 0
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_events < 2:
            raise ConfigError(f"data.n_events must be >= 2, got {self.n_events}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0 or self.max_events < 0:
            raise ConfigError("data.num_workers and data.max_events must be >= 0")


@dataclass
class OptimConfig:
    """Adam optimiser and learning-rate schedule.

    ``scheduler="cosine"`` anneals the rate to ``lr * min_lr_factor`` over ``trainer.max_epochs``;
    ``"none"`` keeps it constant.

    Examples
    --------
    >>> OptimConfig().scheduler
    'cosine'
    """

    lr: float = 2e-3
    weight_decay: float = 0.0
    scheduler: Literal["none", "cosine"] = "cosine"
    min_lr_factor: float = 0.05

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.scheduler not in ("none", "cosine"):
            raise ConfigError(f"optim.scheduler must be none or cosine, got {self.scheduler!r}")
        if not 0 < self.min_lr_factor <= 1:
            raise ConfigError(f"optim.min_lr_factor must be in (0, 1], got {self.min_lr_factor}")


@dataclass
class TrainerConfig:
    """Options of the Lightning ``Trainer`` and of the run.

    Attributes
    ----------
    max_epochs, max_steps:
        Stop after this many epochs / optimiser steps (-1: no step limit).
    max_time_minutes:
        Stop training after this wall time (0: no limit); the best checkpoint is evaluated.
    accelerator, devices, strategy:
        Passed to Lightning (``"auto"`` picks CUDA when present); ``devices`` is ``"auto"`` or a
        count; ``strategy="ddp"`` with ``accelerator="cpu"`` runs data-parallel CPU processes.
    precision:
        Lightning precision string.
    seed:
        Global seed (``seed_everything``, workers included).
    early_stopping_patience:
        Epochs without improvement of the validation loss before stopping (0: off).
    limit_train_batches, limit_val_batches:
        Fraction (<= 1.0) or number of batches per epoch.
    progress_bar:
        Show Lightning's progress bar.
    log_every_n_steps:
        Logging interval.
    threads:
        ``torch.set_num_threads`` (0: leave torch's default). Default 1: on a 2-core machine
        shared with other work, 2 threads made a GravNet step up to 35x slower through thread
        contention (measured 0.43 s vs 0.012 s per batch of 8 events).
    checkpoint_minutes:
        Inside an epoch, write ``checkpoints/last.ckpt`` every this many minutes of training
        (0: only at the end of every epoch, which always writes it), so that ``--resume``
        after a kill loses at most this much work (:class:`calo.train.resume.LatestCheckpoint`).
    checkpoint_every_n_steps:
        Also write ``last.ckpt`` every this many optimiser steps (0: off).
    init_from:
        A checkpoint (``best.ckpt``/``last.ckpt``) of an earlier run of the same task and
        model whose weights and input normalisation start this run: fine-tuning, for example
        with a new loss term, with a fresh optimiser, schedule and history ("": off; not with
        ``--resume``, which continues a run as it was).

    Examples
    --------
    >>> TrainerConfig().accelerator
    'auto'
    """

    max_epochs: int = 20
    max_steps: int = -1
    max_time_minutes: float = 4.0
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = 0
    early_stopping_patience: int = 8
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    progress_bar: bool = True
    log_every_n_steps: int = 10
    threads: int = 1
    checkpoint_minutes: float = 10.0
    checkpoint_every_n_steps: int = 0
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"trainer.max_epochs must be >= 1, got {self.max_epochs}")
        if self.max_time_minutes < 0:
            raise ConfigError(f"trainer.max_time_minutes must be >= 0, got {self.max_time_minutes}")
        if self.max_steps < -1 or self.max_steps == 0:
            raise ConfigError(f"trainer.max_steps must be -1 or >= 1, got {self.max_steps}")
        dev = str(self.devices)
        if dev != "auto" and not (dev.isdigit() and int(dev) > 0) and dev != "-1":
            raise ConfigError(
                f"trainer.devices must be 'auto', -1 or a positive count, got {dev!r}"
            )
        self.devices = dev
        if self.accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
            raise ConfigError(
                f"trainer.accelerator must be auto, cpu, gpu, cuda or mps, got {self.accelerator!r}"
            )
        if self.early_stopping_patience < 0 or self.threads < 0:
            raise ConfigError("trainer.early_stopping_patience and trainer.threads must be >= 0")
        for name in ("limit_train_batches", "limit_val_batches"):
            v = getattr(self, name)
            if not v > 0 or (v > 1 and not float(v).is_integer()):
                raise ConfigError(
                    f"trainer.{name} must be a fraction in (0, 1] or a whole number of batches, "
                    f"got {v}"
                )
        if self.log_every_n_steps < 1:
            raise ConfigError(
                f"trainer.log_every_n_steps must be >= 1, got {self.log_every_n_steps}"
            )
        if not self.checkpoint_minutes >= 0 or self.checkpoint_every_n_steps < 0:
            raise ConfigError(
                "trainer.checkpoint_minutes and trainer.checkpoint_every_n_steps must be >= 0, "
                f"got {self.checkpoint_minutes} and {self.checkpoint_every_n_steps}"
            )

    def lightning_devices(self) -> int | str:
        """``devices`` as Lightning wants it (an int count or ``"auto"``)."""
        return self.devices if self.devices == "auto" else int(self.devices)


def quick_model() -> ModelConfig:
    """Default model of ``calo-train``: the paper's GravNet with 2 blocks and k = 16.

    The paper's sizes (4 blocks, k = 40, :class:`~calo.models.config.ModelConfig` defaults) are
    ``model.gravnet.n_blocks=4 model.gravnet.k=40``; they train about 4x slower on a CPU, too
    slow for the 5-minute default run.

    Examples
    --------
    >>> quick_model().gravnet.n_blocks
    2
    """
    return ModelConfig(gravnet=GravNetModelConfig(n_blocks=2, k=16))


@dataclass
class LossConfig:
    """The training loss (docs/training.md; :mod:`calo.train.losses`).

    Attributes
    ----------
    weighting:
        Hit weights: "truth" is the paper's w = t sqrt(E) (the default); "energy" is w = sqrt(E)
        on every signal hit, whose pointwise minimiser is the mean truth fraction (see
        :mod:`calo.train.losses`). The validation loss that picks the best checkpoint uses
        these weights; the loss in the final metrics is always the paper's.
    ordered_overlap:
        Events whose showers overlap by more than this (:func:`calo.train.losses.shower_overlap`,
        0 apart to 1 on top of each other) are trained with output column j fixed to the j-th
        most energetic truth shower (:func:`calo.train.losses.energy_ordered_loss`); the others
        with the better assignment per event. Where showers cannot be told apart a
        permutation-invariant loss cannot say which column takes which share, and the network
        then splits their hits about evenly; ordered by energy it learns to give the leading
        shower the larger share. 1.0 (the default, the paper's loss) orders no event, 0.0 every
        event with any overlap. The validation loss (best checkpoint, early stopping) and all
        metrics stay permutation invariant. An experiment, off by default: on the quality
        benchmark 0.2 did not improve the response (see the function's docstring).

    share_weight:
        Weight of :func:`calo.train.losses.energy_share_loss` (each shower's share of the
        event's energy, matched as the fraction loss matches it) added to the training loss;
        0 (the default) is the paper's loss. The validation loss stays the paper's.

    Examples
    --------
    >>> LossConfig().weighting, LossConfig().ordered_overlap
    ('truth', 1.0)
    """

    weighting: Literal["truth", "energy"] = "truth"
    ordered_overlap: float = 1.0
    share_weight: float = 0.0

    def __post_init__(self) -> None:
        from calo.train.losses import WEIGHTINGS

        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"loss.weighting must be truth or energy, got {self.weighting!r}")
        if not self.share_weight >= 0.0:
            raise ConfigError(f"loss.share_weight must be >= 0, got {self.share_weight}")
        if not 0.0 <= self.ordered_overlap <= 1.0:
            raise ConfigError(f"loss.ordered_overlap must be in [0, 1], got {self.ordered_overlap}")


@dataclass
class EPiConfig:
    """The electron/pion task of the FPGA paper (``task=e_pi``; :mod:`calo.train.e_pi`).

    Iiyama et al. (2021): up to V_max hits around the seed, 4 features per hit, a
    GarNetStack -> Dense head -> energy regression and electron/pion classification, trained in
    float and then fine-tuned with the firmware's fixed-point arithmetic in the loop
    (:class:`calo.fpga.qat.QGarNetModel`). The model's name is ``qgarnet``.

    Attributes
    ----------
    fixed:
        hls4ml's configuration of the stack: ``fixed.n_vertices`` is V_max (hits per event,
        the most energetic kept), ``fixed.reuse_factor`` R, and the fixed-point types
        (:class:`calo.fpga.garnet.GarNetFixedConfig`; needs ``collapse=mean``).
    sublayers:
        ``[aggregators, F_LR, F_out]`` of each GarNet sublayer (default the paper's).
    head:
        Widths of the Dense (relu) layers after the stack.
    quantize_head:
        The Dense head computes in hls4ml's fixed point in the quantization-aware epochs too
        (with the types ``head_fixed``), so that the whole model equals its hls4ml project
        bit for bit (``calo-export --format hls4ml``); false keeps a float head.
    head_fixed:
        hls4ml types of the head's weights, biases, accumulators, Dense outputs and ReLU
        outputs (:class:`calo.fpga.qat.HeadFixedConfig`; hls4ml's unconfigured
        ``ap_fixed<16,6>`` wraps on a trained head, so the defaults are wider and saturate).
    energy_scale:
        GeV per unit of the regression output.
    ternary:
        Ternary F_LR and F_out kernels in the quantization-aware epochs, as the paper's
        quantized model.
    ternary_threshold:
        Threshold of the ternarisation, relative to a kernel's mean magnitude.
    qat_epochs:
        The last ``qat_epochs`` epochs run in the firmware's fixed-point arithmetic
        (quantization-aware fine-tuning, :class:`calo.train.e_pi.QuantizationAwareTraining`);
        with a time limit they start early enough to run before it. 0: float only.
    regression_weight:
        Weight of the regression loss ``((E_pred - E) / E)^2`` next to the classification's
        binary cross-entropy.
    xy_scale:
        Hit features: ``(x - x_seed) / xy_scale`` and ``(y - y_seed) / xy_scale`` (cm).
    z_offset, z_scale:
        Hit feature ``(z - z_offset) / z_scale`` (cm).
    feature_energy_scale:
        Hit feature ``E[GeV] * feature_energy_scale``.

    Examples
    --------
    >>> EPiConfig().fixed.n_vertices, EPiConfig().sublayers
    (128, [[4, 8, 8], [4, 8, 8], [8, 16, 16]])
    >>> EPiConfig(qat_epochs=-1)
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: e_pi.qat_epochs must be >= 0, got -1
    """

    fixed: GarNetFixedConfig = field(default_factory=GarNetFixedConfig)
    sublayers: list[list[int]] = field(default_factory=lambda: [list(s) for s in PAPER_SUBLAYERS])
    head: list[int] = field(default_factory=lambda: [16, 8])
    quantize_head: bool = True
    head_fixed: HeadFixedConfig = field(default_factory=HeadFixedConfig)
    energy_scale: float = 100.0
    ternary: bool = False
    ternary_threshold: float = 0.7
    qat_epochs: int = 2
    regression_weight: float = 1.0
    xy_scale: float = 18.0
    z_offset: float = 0.0
    z_scale: float = 50.0
    feature_energy_scale: float = 0.5

    def __post_init__(self) -> None:
        self.sublayers = [list(s) for s in self.sublayers]
        self.head = list(self.head)
        if self.qat_epochs < 0:
            raise ConfigError(f"e_pi.qat_epochs must be >= 0, got {self.qat_epochs}")
        if not self.regression_weight >= 0:
            raise ConfigError(f"e_pi.regression_weight must be >= 0, got {self.regression_weight}")
        for key in ("energy_scale", "xy_scale", "z_scale", "feature_energy_scale"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"e_pi.{key} must be > 0, got {getattr(self, key)}")
        if self.fixed.collapse != "mean" or self.fixed.mean_by_nvert:
            raise ConfigError(
                "e_pi.fixed needs collapse=mean and mean_by_nvert=false (the paper's stack "
                "averages over V_max with shifts)"
            )


#: what :class:`PruningConfig` can prune
PRUNE_TARGETS = ("head", "garnet", "both")


@dataclass
class PruningConfig:
    """Magnitude pruning during training (``task=e_pi``; :mod:`calo.train.pruning`,
    docs/pruning.md).

    The weights of smallest magnitude are set to zero, gradually: after epoch ``e`` the
    target sparsity is Zhu and Gupta's (2017) cubic ramp

    .. math:: s(e) = s_f \\left[1 - \\left(1 - \\frac{e - e_0 + 1}{n}\\right)^3\\right],
       \\quad e_0 \\le e < e_0 + n,

    and ``s_f`` from then on (``e_0 = start_epoch``, ``n = ramp_epochs``, ``s_f = amount``).
    Pruned weights stay zero (a mask); at the end of training the mask is made permanent, so the
    checkpoints hold plain weights with exact zeros.

    Attributes
    ----------
    enabled:
        Prune (off by default).
    amount:
        The final sparsity ``s_f``: the fraction of the pruned tensors' entries set to zero,
        in [0, 1).
    start_epoch:
        The first epoch after which weights are pruned (0: after the first epoch).
    ramp_epochs:
        Epochs over which the sparsity ramps up to ``amount``. The ramp should end before the
        quantization-aware epochs (``e_pi.qat_epochs``) start; if they start earlier, the
        sparsity jumps to ``amount`` at their first epoch, so that every quantization-aware
        epoch (among which the best checkpoint is chosen) has the final sparsity.
    parameters:
        What is pruned: ``head`` (the weights of the Dense head and of the two outputs),
        ``garnet`` (the GarNet kernels: distance, F_LR and F_out of every sublayer) or
        ``both``. Biases are never pruned (they cost additions, not multiplications).
    scope:
        ``layer``: every tensor gets the sparsity (``torch.nn.utils.prune.l1_unstructured``);
        ``global``: the smallest magnitudes over all pruned tensors together
        (``global_unstructured``), so tensors end up with different sparsities.

    Examples
    --------
    >>> PruningConfig().enabled, PruningConfig(amount=0.75).target(5)
    (False, 0.75)
    >>> [round(PruningConfig(amount=0.5, ramp_epochs=2).target(e), 3) for e in range(3)]
    [0.438, 0.5, 0.5]
    >>> PruningConfig(amount=1.0)
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: pruning.amount must be in [0, 1), got 1.0
    """

    enabled: bool = False
    amount: float = 0.5
    start_epoch: int = 0
    ramp_epochs: int = 3
    parameters: Literal["head", "garnet", "both"] = "both"
    scope: Literal["layer", "global"] = "layer"

    def __post_init__(self) -> None:
        if not 0.0 <= self.amount < 1.0:
            raise ConfigError(f"pruning.amount must be in [0, 1), got {self.amount}")
        if self.start_epoch < 0:
            raise ConfigError(f"pruning.start_epoch must be >= 0, got {self.start_epoch}")
        if self.ramp_epochs < 1:
            raise ConfigError(f"pruning.ramp_epochs must be >= 1, got {self.ramp_epochs}")
        if self.parameters not in PRUNE_TARGETS:
            raise ConfigError(
                f"pruning.parameters must be head, garnet or both, got {self.parameters!r}"
            )
        if self.scope not in ("layer", "global"):
            raise ConfigError(f"pruning.scope must be layer or global, got {self.scope!r}")

    def target(self, epoch: int) -> float:
        """The sparsity after ``epoch`` (0 before ``start_epoch``; see the class docstring)."""
        if epoch < self.start_epoch:
            return 0.0
        done = min(1.0, (epoch - self.start_epoch + 1) / self.ramp_epochs)
        return self.amount * (1.0 - (1.0 - done) ** 3)


@dataclass
class CondensationTaskConfig:
    """Any number of particles by object condensation (``task=condensation``;
    :mod:`calo.train.condensation_task`, docs/condensation.md).

    The model is ``model.name``'s backbone with the condensation head of
    ``model.condensation``; the loss is :func:`calo.train.condensation.condensation_loss` with
    the energy-correction payload (and the position payload with ``position_weight`` > 0).

    Attributes
    ----------
    q_min, s_b, normalization:
        The loss's minimal charge, noise weight and potential normalisation.
    payload_weight:
        Weight of the payload term (energy correction and position).
    position_weight:
        Weight of the position payload inside the payload term (squared distance between the
        predicted and the true impact point in units of ``model.condensation.position_scale``
        cm); > 0 needs ``model.condensation.position=true``.
    energy_target:
        The energy the correction learns: the particle's ``true`` energy (the deposited one
        where the file has none) or its ``deposited`` energy.
    sharing_weight:
        Weight of the energy-sharing loss (:func:`calo.train.condensation.sharing_loss`),
        which trains the clustering space so that ``clustering.share_sigma``'s softmax gives
        the hits' true energy fractions among overlapping particles; > 0 needs
        ``clustering.share_sigma`` > 0. With ``share_sigma`` > 0 the energy correction
        learns the particle's share of the hit energies instead of the hard sum.
    clustering:
        Condensation clustering thresholds t_beta, t_d (:class:`calo.reco.config.CondensationConfig`).
    clue:
        CLUE's d_c (cm), rho_c (GeV), outlier factor and kernel, on the hit positions.
    clue_space:
        The coordinates CLUE clusters in: ``xy`` (the hits projected on the front face) or
        ``xyz``.
    matching:
        IoU threshold and merge/split fractions of the matching.
    tune_events:
        After training, calo-train tunes CLUE's ``dc``, ``rho_c``, outlier factor and the
        clustering's ``t_beta``, ``t_d`` on this many *training* events
        (:func:`calo.train.condensation_task.tune_parameters`, grids
        ``TUNING_GRIDS``), writes the tuned values into the run's ``config.yaml`` (so
        calo-evaluate and calo-predict use them) and the grids into ``metrics.json``; 0 keeps
        the configured values.

    Examples
    --------
    >>> CondensationTaskConfig().clustering.t_beta, CondensationTaskConfig().clue_space
    (0.3, 'xy')
    """

    q_min: float = 0.1
    s_b: float = 1.0
    normalization: Literal["event", "object"] = "event"
    payload_weight: float = 1.0
    position_weight: float = 0.0
    energy_target: Literal["true", "deposited"] = "true"
    sharing_weight: float = 0.0
    clustering: CondensationConfig = field(default_factory=CondensationConfig)
    clue: ClueConfig = field(default_factory=ClueConfig)
    clue_space: Literal["xy", "xyz"] = "xy"
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    tune_events: int = 300

    def __post_init__(self) -> None:
        if self.tune_events < 0:
            raise ConfigError(f"condensation.tune_events must be >= 0, got {self.tune_events}")
        if not self.q_min > 0:
            raise ConfigError(f"condensation.q_min must be > 0, got {self.q_min}")
        if not self.sharing_weight >= 0:
            raise ConfigError(
                f"condensation.sharing_weight must be >= 0, got {self.sharing_weight}"
            )
        if self.sharing_weight > 0 and not self.clustering.share_sigma > 0:
            raise ConfigError(
                "condensation.sharing_weight > 0 needs condensation.clustering.share_sigma > 0 "
                "(the width the loss trains the fractions for)"
            )
        for key in ("s_b", "payload_weight", "position_weight"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"condensation.{key} must be >= 0, got {getattr(self, key)}")
        if self.normalization not in ("event", "object"):
            raise ConfigError(
                f"condensation.normalization must be event or object, got {self.normalization!r}"
            )
        if self.energy_target not in ("true", "deposited"):
            raise ConfigError(
                f"condensation.energy_target must be true or deposited, got {self.energy_target!r}"
            )
        if self.clue_space not in ("xy", "xyz"):
            raise ConfigError(f"condensation.clue_space must be xy or xyz, got {self.clue_space!r}")


@dataclass
class TrainConfig:
    """A whole training run.

    The defaults are tuned so that ``calo-train`` without arguments (built-in data, 3000
    events, :func:`quick_model`, 20 epochs of batch 8, Adam 2e-3 with cosine decay, stopped
    after at most 4 minutes of training) finishes in under 5 minutes on a 2-core CPU.

    ``task`` picks what is learned: ``fractions`` (the default) the paper's per-hit energy
    fractions of overlapping showers with the ``model`` section; ``e_pi`` the FPGA paper's
    electron/pion classification and energy regression with the quantization-aware GarNet of
    the ``e_pi`` section (the ``model``, ``loss``, ``baseline`` and ``calibration`` sections
    then go unused); ``condensation`` any number of particles by object condensation on the
    ``model`` backbone with the ``condensation`` section, compared with CLUE (the ``loss``,
    ``baseline`` and ``calibration`` sections go unused).

    Examples
    --------
    >>> TrainConfig().model.name, TrainConfig().model_name
    ('gravnet', 'gravnet')
    >>> TrainConfig(task="e_pi").model_name
    'qgarnet'
    """

    task: Literal["fractions", "e_pi", "condensation"] = "fractions"
    model: ModelConfig = field(default_factory=quick_model)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    e_pi: EPiConfig = field(default_factory=EPiConfig)
    condensation: CondensationTaskConfig = field(default_factory=CondensationTaskConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    shared_threshold: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.shared_threshold < 0.5:
            raise ConfigError(f"shared_threshold must be in (0, 0.5), got {self.shared_threshold}")
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.condensation.position_weight > 0 and not self.model.condensation.position:
            raise ConfigError(
                "condensation.position_weight > 0 needs model.condensation.position=true"
            )
        if self.pruning.enabled and self.task != "e_pi":
            raise ConfigError(
                f"pruning.enabled=true needs task=e_pi (the FPGA model), got task={self.task}"
            )

    @property
    def model_name(self) -> str:
        """The trained model's name: ``model.name``, or ``qgarnet`` for the e_pi task."""
        return "qgarnet" if self.task == "e_pi" else self.model.name
