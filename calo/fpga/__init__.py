"""Fixed-point GarNet for FPGAs: ap_fixed types, hls4ml's data flow, numba reference, export.

Modules
-------
fixed
    ``ap_fixed``/``ap_ufixed`` types: quantize, cast, parse hls4ml strings, numba kernels.
garnet
    Weights of a (simplified) GarNet layer or stack, hls4ml's default internal types
    (:class:`GarNetFixedConfig`), the contracted input transform and the exp(-d^2) table.
reference
    Bit-exact numba emulation of hls4ml's ``nnet_garnet.h`` (its generated kernels live in the
    private ``_codegen``, ``_exact_kernel`` and ``_fast_kernel`` modules).
overflow
    What the reference counts as overflow, and the per-run report with suggested types.
export
    C++ config header, test vectors, and the whole export of a checkpoint (``export_model``).
harness
    A g++ harness that runs an export against the hls4ml headers.
latency
    Latency / initiation-interval / DSP model of the hls4ml GarNet firmware.
qat
    Quantization-aware GarNetStack in PyTorch, bit for bit with the reference in eval mode, and
    the paper's FPGA model (stack + float Dense head).
data
    Electron / pion samples in the paper's padded 4-feature format.
train
    Plain training loop, evaluation (ROC AUC, response) and checkpoints of the FPGA model.
cli
    ``calo-export``: the command line of ``export.export_model``.
"""

from calo.fpga.fixed import FixedType, cast, parse_type, quantize, to_float

__all__ = ["FixedType", "cast", "parse_type", "quantize", "to_float"]
