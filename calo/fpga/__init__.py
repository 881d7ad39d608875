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
    The file formats: C++ config header and test vectors.
model_export
    What ``calo-export`` writes for a trained model: the e/pi task's quantized stack
    (``export_qgarnet``) or the GarNet layers of a fraction GarNet in hls4ml's form
    (``export_fraction_garnet``), and what blocks the others (``garnet_blockers``).
harness
    A g++ harness that runs an export against the hls4ml headers.
latency
    Latency / initiation-interval / DSP model of the hls4ml GarNet firmware.
qat
    Quantization-aware GarNetStack in PyTorch, bit for bit with the reference in eval mode, and
    the paper's FPGA model (stack + float Dense head).
data
    Electron / pion samples in the paper's padded 4-feature format (trained by
    ``calo-train --task e_pi``, :mod:`calo.train.e_pi`).
cli
    ``calo-export``: reads a calo-train run and calls :mod:`calo.fpga.model_export`.
"""

from calo.fpga.fixed import FixedType, cast, parse_type, quantize, to_float

__all__ = ["FixedType", "cast", "parse_type", "quantize", "to_float"]
